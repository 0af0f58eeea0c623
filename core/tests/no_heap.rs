//! The core allocates nothing while it works: a counting global allocator
//! watches a whole message being written (headers, a multi-MiB body and
//! attachment through small buffers) and a data-mode session being framed.
//! The count is kept per thread: the test harness's own threads allocate
//! while a test runs (seen under qemu-aarch64), and the core runs on the
//! caller's thread, so only that thread's allocations are the core's.

use atmail_core::charset::Charset;
use atmail_core::framer::{DataLimits, Framed, Framer};
use atmail_core::header::{Address, Text, Token};
use atmail_core::message::{
    Boundary, MessageHead, MessageId, MessageWriter, Recipient, RecipientKind,
};
use atmail_core::mime_base64::MimeBase64Encoder;
use atmail_core::CoderResult;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // A const initializer and no destructor: reading it never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A thread being torn down has no count left to keep.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn encoding_framing_and_writing_never_allocate() {
    // The counter itself works: one Vec is one allocation.
    assert_eq!(
        allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))),
        1
    );
    let input: Vec<u8> = (0..4 << 20).map(|i: u32| (i * 31 + i / 7) as u8).collect();
    let text: Vec<u8> = input.iter().map(|b| b & 0x7f).collect();
    let mut out = vec![0u8; 4096];
    let mut total = 0usize;

    let encoder = allocations_during(|| {
        let mut enc = MimeBase64Encoder::new();
        for chunk in input.chunks(1000) {
            let mut src = chunk;
            loop {
                let (r, read, written) = enc.encode(src, &mut out, false);
                total += written;
                src = &src[read..];
                if r == CoderResult::InputEmpty {
                    break;
                }
            }
        }
        while let (CoderResult::OutputFull, _, w) = enc.encode(b"", &mut out, true) {
            total += w;
        }
    });
    assert_eq!(encoder, 0, "MIME encoder allocated");
    assert!(total > input.len());

    let framer = allocations_during(|| {
        let mut f = Framer::new(0, DataLimits::from_seconds(300, Some(3)));
        for (i, chunk) in input.chunks(512).enumerate() {
            let mut rest = chunk;
            while let (Framed::Data(d), n) = f.push(i as u64, rest) {
                total += d.len();
                rest = &rest[n..];
            }
        }
        assert!(matches!(f.poll(u64::MAX / 2), Framed::End(_)));
    });
    assert_eq!(framer, 0, "framer allocated");

    let recipients = [
        Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"to@example.com").unwrap(),
        },
        Recipient {
            kind: RecipientKind::Bcc,
            address: Address::new(b"bcc@example.com").unwrap(),
        },
    ];
    let writer = allocations_during(|| {
        let name = Text::file_name(Charset::Utf8, "数据.bin".as_bytes()).unwrap();
        let head = MessageHead {
            from: Address::new(b"from@example.com").unwrap(),
            recipients: &recipients,
            subject: Some(Text::subject(Charset::Utf8, "你好 smtp".as_bytes()).unwrap()),
            date: Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).unwrap(),
            message_id: MessageId::new(b"<n@example.com>").unwrap(),
        };
        let mut w = MessageWriter::new(Charset::Utf8, Boundary::from_seed(b"<n@example.com>"));
        while let Ok((CoderResult::OutputFull, _)) = w.head(&head, &mut out[..100]) {}
        for (data, is_body) in [(&text[..], true), (&input[..], false)] {
            let mut src = data;
            loop {
                let step = if is_body {
                    w.body(src, &mut out, true)
                } else {
                    w.attachment(&name, src, &mut out, true)
                };
                let (r, read, written) = step.unwrap();
                total += written;
                src = &src[read..];
                if r == CoderResult::InputEmpty {
                    break;
                }
            }
        }
        while let Ok((CoderResult::OutputFull, _)) = w.finish(&mut out) {}
        assert!(w.is_done());
    });
    assert_eq!(writer, 0, "message writer allocated");
}
