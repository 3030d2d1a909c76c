//! Reusable scratch memory for the forward pass.

use std::cell::RefCell;

use crate::Network;

/// Scratch memory for [`Network::forward_into`]: made once, reused for every
/// image, so that a loop of forward passes allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct Workspace {
    /// Copy of a non-contiguous input.
    pub(crate) input: Vec<f32>,
    /// Output of a non-contiguous output view.
    pub(crate) output: Vec<f32>,
    /// The layers' intermediate volumes and kernel scratch.
    pub(crate) scratch: Vec<f32>,
    /// A batch's buffers for the layers it runs for all images at once.
    pub(crate) rows: Vec<f32>,
}

impl Workspace {
    /// A workspace large enough for network `N`.
    pub fn new<N: Network>() -> Workspace {
        let mut ws = Workspace::default();
        ws.reserve::<N>();
        ws
    }

    /// Grows the workspace, if needed, to fit network `N`.
    pub fn reserve<N: Network>(&mut self) {
        grow(&mut self.input, N::INPUT.iter().product());
        grow(&mut self.output, N::OUTPUT.iter().product());
        grow(&mut self.scratch, N::WORKSPACE);
    }

    /// Grows the workspace, if needed, to run `images` images of network `N`
    /// at once through [`Network::forward_raw_batch`]; for one image, which
    /// runs [`Network::forward_raw`], to what [`Workspace::reserve`] grows.
    pub(crate) fn reserve_batch<N: Network>(&mut self, images: usize) {
        self.reserve::<N>();
        if images > 1 {
            let len = |volume: [usize; 3]| volume.iter().product::<usize>() * images;
            grow(&mut self.input, len(N::INPUT));
            grow(&mut self.output, len(N::OUTPUT));
            grow(&mut self.rows, 2 * images * N::BATCH_ROWS);
        }
    }
}

fn grow(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

thread_local! {
    static LOCAL: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Runs `f` with this thread's workspace, grown to fit `N`. Re-entrant use
/// (a forward pass inside a forward pass) gets a fresh workspace.
pub(crate) fn with_local<N: Network, R>(f: impl FnOnce(&mut Workspace) -> R) -> R {
    LOCAL.with(|cell| match cell.try_borrow_mut() {
        Ok(mut ws) => {
            ws.reserve::<N>();
            f(&mut ws)
        }
        Err(_) => f(&mut Workspace::new::<N>()),
    })
}
