// The header from C++: it must compile with extern "C" linkage and link.
#include "atmail.h"

#include <cstdio>
#include <cstring>

int main() {
    atmail_session *session = nullptr;
    if (atmail_session_new(&session) != ATMAIL_STATUS_OK) {
        return 1;
    }
    std::printf("atmail %s from C++, session of %zu bytes\n", atmail_version(),
                atmail_session_size());
    atmail_session_free(session);
    return std::strlen(atmail_status_str(ATMAIL_STATUS_PANIC)) > 0 ? 0 : 1;
}
