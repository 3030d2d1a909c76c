//! One image's layers split over two threads of rayon's pool, with the
//! second thread spinning between layers rather than asleep.
//!
//! A kernel that splits its work calls [`join`]. Outside a pass that
//! formed a [`team`] it is `rayon::join`, whose other half waits on the
//! pool's deque, and whose idle workers go to sleep within microseconds:
//! waking one costs more than a small layer takes. Inside a team, the
//! partner thread spins on one atomic word for the pass's whole length, so
//! that handing it half of a layer costs a cache line's round trip; the
//! leader takes a half back if the partner has not picked it up by the time
//! its own half is done, so that a partner that never started (its pool
//! was busy) only costs the split.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// No job posted.
const IDLE: u8 = 0;
/// A job posted by the leader, not yet taken.
const POSTED: u8 = 1;
/// The partner is running the job.
const TAKEN: u8 = 2;
/// The partner has finished the job.
const DONE: u8 = 3;

/// A posted job: the address of its closure and the function that runs
/// it.
type Job = (*const (), unsafe fn(*const ()));

/// What the leader and its partner share during one pass.
struct Team {
    state: AtomicU8,
    /// The posted job: its closure's address and the function that runs
    /// it. Written by the leader while the state is `IDLE`, read by whoever
    /// moves the state away from `POSTED`.
    job: UnsafeCell<Option<Job>>,
    /// The partner's job panicked.
    panicked: AtomicBool,
    /// The pass is over: the partner returns.
    stop: AtomicBool,
}

// SAFETY: `job` is accessed only by the thread that owns the protocol's
// current state (the leader while `IDLE`, the thread that moved it from
// `POSTED`), and the state's release and acquire order those accesses.
unsafe impl Sync for Team {}

thread_local! {
    /// The team this thread leads, during a pass.
    static LEADING: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

/// Whether this thread leads a team: a split then costs little, and pays
/// for smaller layers.
pub fn active() -> bool {
    LEADING.with(|t| !t.get().is_null())
}

/// Runs `pass` on this thread, leading a team: when the current rayon pool
/// (the global one outside a pool) has more than one thread, one of its
/// workers spins beside this thread until `pass` returns, taking the
/// halves that [`join`] hands it. With one thread, or inside a team
/// already, runs `pass` alone. The caller need not be a worker: leading
/// from the calling thread spares a wake-up each way (about 12 µs a pass
/// on a 2-core AMD EPYC) over handing the pass to the pool and waiting.
/// Allocates nothing on a worker thread; elsewhere, the partner's job.
pub fn team<R: Send>(pass: impl FnOnce() -> R + Send) -> R {
    if active() || rayon::current_num_threads() < 2 {
        return pass();
    }
    let team = Team {
        state: AtomicU8::new(IDLE),
        job: UnsafeCell::new(None),
        panicked: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    };
    let lead = || {
        /// Stops the partner and leaves the team, however `pass` ends.
        struct Leave<'t>(&'t Team);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                LEADING.with(|t| t.set(std::ptr::null()));
                self.0.stop.store(true, Ordering::Release);
            }
        }
        LEADING.with(|t| t.set(&team));
        let _leave = Leave(&team);
        pass()
    };
    if rayon::current_thread_index().is_some() {
        // On a worker: the partner is a job on this worker's deque, for
        // another to steal (nothing allocated).
        return rayon::join(lead, || partner(&team)).0;
    }
    // Elsewhere, the partner is spawned into the pool first (one small
    // allocation), so that it wakes while the pass starts; the scope
    // returns once it has seen `stop` (at once if it starts late).
    rayon::in_place_scope(|scope| {
        scope.spawn(|_| partner(&team));
        lead()
    })
}

/// Spins of a waiting loop between yields of the thread: on a machine with
/// more runnable threads than cores, a waiting thread spinning through its
/// time slice would hold up the thread it waits for.
const SPINS_PER_YIELD: u32 = 1 << 12;

/// One turn of a waiting loop that has turned `spins` times: a pause, and
/// every [`SPINS_PER_YIELD`] turns a yield to the scheduler (a system call
/// of about a microsecond when no other thread waits for the core).
#[inline(always)]
fn wait(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if spins.is_multiple_of(SPINS_PER_YIELD) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// The partner's loop: takes each posted job until the pass is over.
fn partner(team: &Team) {
    let mut spins = 0;
    loop {
        if team.state.load(Ordering::Acquire) == POSTED
            && team
                .state
                .compare_exchange(POSTED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // SAFETY: this thread moved the state from POSTED, so it alone
            // reads the job, which the leader wrote before posting and
            // keeps alive until the state is DONE.
            let (data, call) = unsafe { (*team.job.get()).expect("a posted job") };
            // SAFETY: `call` is the function made for `data`'s type.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { call(data) }));
            team.panicked.store(result.is_err(), Ordering::Relaxed);
            team.state.store(DONE, Ordering::Release);
        } else if team.stop.load(Ordering::Acquire) {
            return;
        } else {
            wait(&mut spins);
        }
    }
}

/// Runs the closure that `data` points to, an `UnsafeCell<Option<F>>`,
/// once.
///
/// # Safety
/// `data` points to a live `UnsafeCell<Option<F>>` that no other thread
/// touches until this returns.
unsafe fn call<F: FnOnce()>(data: *const ()) {
    // SAFETY: the caller's contract.
    let f = unsafe { (*(*(data as *const UnsafeCell<Option<F>>)).get()).take() };
    if let Some(f) = f {
        f();
    }
}

/// Runs `a` and `b`, on two threads where that pays: handed to the team's
/// partner inside a [`team`], else `rayon::join`. Returns when both are
/// done; a panic in either is resumed here, after both have finished.
pub fn join(a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    let team = LEADING.with(Cell::get);
    if team.is_null() {
        rayon::join(a, b);
        return;
    }
    // SAFETY: a leader's team lives until its pass returns, which is after
    // this call.
    let team = unsafe { &*team };
    if team.state.load(Ordering::Relaxed) != IDLE {
        // A join inside the leader's half of another: the partner has that
        // one's other half.
        a();
        b();
        return;
    }
    let b = UnsafeCell::new(Some(b));
    erased_post(team, &b);
    let a_result = catch_unwind(AssertUnwindSafe(a));
    if team
        .state
        .compare_exchange(POSTED, IDLE, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        // Not taken: ours again.
        // SAFETY: the state is IDLE again, and the partner reads a job only
        // after moving it from POSTED.
        let b = unsafe { (*b.get()).take() };
        if let Some(b) = b {
            b();
        }
    } else {
        let mut spins = 0;
        while team.state.load(Ordering::Acquire) != DONE {
            wait(&mut spins);
        }
        team.state.store(IDLE, Ordering::Relaxed);
        if team.panicked.load(Ordering::Relaxed) {
            panic!("a kernel panicked on the other thread of the pass");
        }
    }
    if let Err(panic) = a_result {
        resume_unwind(panic);
    }
}

/// Posts `b` as the team's job.
fn erased_post<F: FnOnce() + Send>(team: &Team, b: &UnsafeCell<Option<F>>) {
    // SAFETY: the state is IDLE (one job at a time, from the leader's
    // thread alone), so the leader owns `job`.
    unsafe {
        *team.job.get() = Some((b as *const UnsafeCell<Option<F>> as *const (), call::<F>));
    }
    team.state.store(POSTED, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool")
    }

    /// Every half runs exactly once, on one thread or two, in and out of a
    /// team, and nested joins too.
    #[test]
    fn halves_run_once_wherever_they_run() {
        for threads in [1, 2, 3] {
            pool(threads).install(|| {
                let mut out = vec![0u32; 64];
                team(|| {
                    assert_eq!(active(), threads > 1);
                    for round in 1..=200u32 {
                        let (lo, hi) = out.split_at_mut(32);
                        join(
                            || {
                                let (a, b) = lo.split_at_mut(8);
                                join(
                                    || a.iter_mut().for_each(|v| *v += round),
                                    || b.iter_mut().for_each(|v| *v += round),
                                );
                            },
                            || {
                                let (a, b) = hi.split_at_mut(16);
                                join(
                                    || a.iter_mut().for_each(|v| *v += round),
                                    || b.iter_mut().for_each(|v| *v += round),
                                );
                            },
                        );
                    }
                });
                assert!(!active());
                assert!(
                    out.iter().all(|&v| v == 200 * 201 / 2),
                    "{threads}: {out:?}"
                );
            });
        }
    }

    /// The partner's panic reaches the leader once both halves are done,
    /// and the team is left.
    #[test]
    fn a_panic_on_either_side_reaches_the_caller() {
        pool(2).install(|| {
            for side in 0..2 {
                let result = catch_unwind(|| {
                    team(|| {
                        join(
                            || assert!(side != 0, "left"),
                            || assert!(side != 1, "right"),
                        )
                    })
                });
                assert!(result.is_err());
                assert!(!active());
            }
        });
    }
}
