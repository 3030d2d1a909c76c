//! The forward pass allocates nothing but its output, and `forward_into`
//! with a workspace made for the network allocates nothing at all: checked
//! with a global allocator that counts, while a measurement runs, the
//! allocations of the measuring thread and of rayon's worker threads (not
//! those of the test harness's own threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use cnn::{network, Network, Workspace};
use ndarray::{Array3, Array4, ArrayView3};

/// The system allocator, counting allocations while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread is the one measuring.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn count_one() {
    if !COUNTING.load(Ordering::SeqCst) {
        return;
    }
    // `try_with`: the thread-local may be gone while a thread exits. Neither
    // it nor rayon's lookup of the current worker allocates.
    let measuring = MEASURING.try_with(Cell::get).unwrap_or(false);
    if measuring || rayon::current_thread_index().is_some() {
        COUNT.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every method forwards to `System` with the same arguments; the
// counting only touches atomics and thread-locals without destructors.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by this thread and rayon's workers while `f` runs.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    MEASURING.with(|m| m.set(true));
    COUNT.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let result = f();
    COUNTING.store(false, Ordering::SeqCst);
    MEASURING.with(|m| m.set(false));
    (COUNT.load(Ordering::SeqCst), result)
}

/// Held by each test: the count is global, and so is rayon's pool.
static SERIAL: Mutex<()> = Mutex::new(());

/// Repetitions of each measured call: an allocation made once in a while
/// (a queue growing by blocks) shows up too.
const REPEAT: usize = 100;

network! {
    /// B1, the seed network: direct convolution, fused ReLU, pooling, fc.
    struct Seed {
        input(3, 32, 32)
        conv(10, 5, s = 1, p = 2) relu pool(2, 2)
        fc(10)
    }

    /// Every other layer kind: blocked convolutions, average pooling,
    /// standalone activations, softmax.
    struct Mixed {
        input(16, 24, 24)
        conv(32, 3, p = same) tanh avgpool(2)
        conv(8, 3, p = 1) sigmoid relu pool(3, 3)
        flatten fc(12) softmax
    }

    /// A 1×1 convolution: the pointwise path.
    struct Pointwise {
        input(16, 6, 6)
        conv(8, 1) relu
    }

    /// 1×1 convolutions on rows narrower than a vector: 6 pixels, then one
    /// (after global pooling).
    struct Narrow {
        input(16, 2, 3)
        conv(8, 1) relu avgpool((2, 3))
        conv(10, 1)
    }

    /// A convolution large enough to be split over rayon's pool.
    struct Large {
        input(16, 32, 32)
        conv(32, 3, p = same) relu
        conv(16, 3, p = same)
    }

    /// Every layer of modern networks: batch norm folded into a conv and
    /// standing alone, residual blocks with and without a shortcut,
    /// grouped, depthwise and dilated convolutions, padded pools, global
    /// pooling, dropout and the smooth activations.
    struct Modern {
        input(8, 12, 12)
        conv(16, 3, p = 1, bias = false) bn relu6
        pool(3, 2, p = 1, floor)
        residual(relu) {
            conv(16, 3, p = 1, g = 16, bias = false) bn silu
            conv(16, 1) bn
        }
        residual {
            conv(32, 3, s = 2, d = 2, p = 2, g = 4, floor) bn hardswish
        } shortcut {
            conv(32, 1, s = 2, bias = false, floor) bn
        }
        avgpool(3, 1, p = 1) gelu
        leaky_relu(0.1) bn dropout(0.2)
        global_avgpool flatten fc(10)
    }

    /// Activations and softmax only: the copies of the plan.
    struct Copies {
        input(2, 5, 5)
        relu softmax flatten
    }
}

fn image<N: Network>() -> Array3<f32> {
    let [c, h, w] = N::INPUT;
    Array3::from_shape_fn((c, h, w), |(c, y, x)| {
        ((c * 31 + y * 7 + x * 3) % 17) as f32 / 8.0 - 1.0
    })
}

/// `forward_into` allocates nothing, for contiguous and non-contiguous
/// inputs and outputs; `forward` allocates exactly its output.
fn check<N: Network>() {
    let name = N::NAME;
    let net = N::init(7);
    let x = image::<N>();
    let [c, h, w] = N::OUTPUT;
    let mut ws = Workspace::new::<N>();
    let mut out = Array3::<f32>::zeros((c, h, w));
    // A non-contiguous input (H and W transposed in memory) and output.
    let transposed = x
        .view()
        .permuted_axes([0, 2, 1])
        .as_standard_layout()
        .into_owned();
    let x_t: ArrayView3<f32> = transposed.view().permuted_axes([0, 2, 1]);
    let mut out_t = Array3::<f32>::zeros((c, w, h));

    // Warm-up: the first calls start rayon's pool and size this thread's
    // workspace for `forward`.
    let first = net.forward(x.view()).expect("forward");

    let (n, result) = allocations(|| {
        (0..REPEAT).try_for_each(|_| net.forward_into(x.view(), out.view_mut(), &mut ws))
    });
    result.expect("forward_into");
    assert_eq!(n, 0, "{name}: {REPEAT} forward_into allocated {n} times");
    assert_eq!(out, first);

    let (n, result) = allocations(|| {
        (0..REPEAT).try_for_each(|_| {
            net.forward_into(x_t, out_t.view_mut().permuted_axes([0, 2, 1]), &mut ws)
        })
    });
    result.expect("forward_into on views");
    assert_eq!(
        n, 0,
        "{name}: {REPEAT} forward_into on views allocated {n} times"
    );
    assert_eq!(out_t.view().permuted_axes([0, 2, 1]), out);

    for input in [x.view(), x_t] {
        let mut outputs = Vec::with_capacity(REPEAT);
        let (n, result) = allocations(|| {
            (0..REPEAT).try_for_each(|_| net.forward(input).map(|o| outputs.push(o)))
        });
        result.expect("forward");
        assert!(outputs.iter().all(|o| *o == first));
        assert_eq!(
            n, REPEAT,
            "{name}: {REPEAT} forward allocated {n} times, not only their outputs"
        );
    }
}

#[test]
fn forward_allocates_only_its_output() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The counter counts: a vector is one allocation, an array one more.
    let (n, _) = allocations(|| (vec![1.0f32; 100], Array4::<f32>::zeros((2, 3, 4, 5))));
    assert_eq!(n, 2);

    check::<Seed>();
    check::<Mixed>();
    check::<Copies>();
    check::<Pointwise>();
    check::<Narrow>();
    check::<Modern>();
}

/// A convolution large enough to split: from outside the pool it runs on
/// the calling thread, and inside the pool it is split with `rayon::join`,
/// which pushes to the worker's own deque; neither allocates.
#[test]
fn forward_into_with_a_large_conv_allocates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check::<Large>();
    // Inside the pool (rayon::scope runs its body on a worker thread).
    let expected = Large::init(7)
        .forward(image::<Large>().view())
        .expect("forward");
    // Warm-up: a worker's first steal registers it with crossbeam's epoch
    // collector, an allocation once per thread; a broadcast makes every
    // worker take a job from its deque.
    rayon::broadcast(|_| ());
    rayon::scope(|_| {
        assert!(rayon::current_thread_index().is_some());
        let net = Large::init(7);
        let x = image::<Large>();
        let mut ws = Workspace::new::<Large>();
        let mut out = Array3::<f32>::zeros(expected.dim());
        net.forward_into(x.view(), out.view_mut(), &mut ws)
            .expect("warm-up");
        let (n, result) = allocations(|| {
            (0..REPEAT).try_for_each(|_| net.forward_into(x.view(), out.view_mut(), &mut ws))
        });
        result.expect("forward_into inside the pool");
        assert_eq!(
            n, 0,
            "{REPEAT} forward_into inside the pool allocated {n} times"
        );
        assert_eq!(out, expected);
    });
}
