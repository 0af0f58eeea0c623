/* The least a Cortex-M4 image needs before main (QEMU mps2-an386): the
 * vector table, .data copied from flash, .bss zeroed and the FPU enabled
 * (the library is built for the hard-float ABI). A fault ends QEMU with
 * exit code 86 through semihosting, so a test sees it. The interrupts an
 * image may serve (SysTick, the receive interrupts of UART0 and UART1)
 * are weak names for that fault until the image defines them. */

#include <stdint.h>

extern uint32_t _data_start, _data_end, _data_load, _bss_start, _bss_end, _stack_top;
int main(void);
void firmware_exit(int code) __attribute__((noreturn));

/* Semihosting SYS_EXIT_EXTENDED (0x20): QEMU exits with `code`. */
void firmware_exit(int code) {
    uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20;
    register uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

void default_handler(void) { firmware_exit(86); }
void systick_handler(void) __attribute__((weak, alias("default_handler")));
void uart0_rx_handler(void) __attribute__((weak, alias("default_handler")));
void uart1_rx_handler(void) __attribute__((weak, alias("default_handler")));

__attribute__((noreturn)) void reset_handler(void) {
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20; /* CP10 and CP11: full access */
    __asm__ volatile("dsb\n\tisb");
    for (uint32_t *src = &_data_load, *dst = &_data_start; dst < &_data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_bss_start; dst < &_bss_end;) {
        *dst++ = 0;
    }
    firmware_exit(main());
}

#define F ((void *)default_handler)
/* The core's 16, then the board's IRQ 0-3 (mps2-an386: UART0 RX, TX,
 * UART1 RX, TX). */
__attribute__((section(".vectors"), used)) static const void *const vectors[20] = {
    &_stack_top, (void *)reset_handler, F, F, F, F, F, 0, 0, 0, 0, F, F, 0, F,
    (void *)systick_handler, (void *)uart0_rx_handler, F, (void *)uart1_rx_handler, F,
};
