//! Reusable scratch memory for the forward pass.

use std::cell::RefCell;

use crate::model::Model;
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
        self.reserve_model(N::MODEL);
    }

    fn reserve_model(&mut self, model: &Model) {
        grow(&mut self.input, model.input_len());
        grow(&mut self.output, model.output_len());
        grow(&mut self.scratch, model.workspace);
    }

    /// Grows the workspace, if needed, to run `images` images of `model` at
    /// once through [`Network::forward_raw_batch`]; for one image, which
    /// runs [`Network::forward_raw`], to what [`Workspace::reserve`] grows.
    pub(crate) fn reserve_batch(&mut self, model: &Model, images: usize) {
        self.reserve_model(model);
        if images > 1 {
            grow(&mut self.input, model.input_len() * images);
            grow(&mut self.output, model.output_len() * images);
            grow(&mut self.rows, 2 * images * model.plan.batch_rows());
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

/// Runs `f` with this thread's workspace, grown to fit `model`. Re-entrant
/// use (a forward pass inside a forward pass) gets a fresh workspace.
pub(crate) fn with_local<R>(model: &Model, f: impl FnOnce(&mut Workspace) -> R) -> R {
    LOCAL.with(|cell| match cell.try_borrow_mut() {
        Ok(mut ws) => {
            ws.reserve_model(model);
            f(&mut ws)
        }
        Err(_) => {
            let mut ws = Workspace::default();
            ws.reserve_model(model);
            f(&mut ws)
        }
    })
}
