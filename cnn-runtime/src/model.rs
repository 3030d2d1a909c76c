//! What `network!` knows of a network, as one constant: its volumes, its
//! layers and its forward pass.

use crate::layer::Node;
use crate::plan::Plan;
use crate::LayerInfo;

/// A network as the expansion of `network!` describes it: every fact the
/// runtime needs, computed while the macro expanded. Each generated struct
/// holds one in [`Network::MODEL`](crate::Network::MODEL), and the
/// [`Network`](crate::Network) trait's methods run it.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// The struct's name.
    pub name: &'static str,
    /// The input volume, `[C, H, W]`.
    pub input: [usize; 3],
    /// The output volume, `[C, H, W]`.
    pub output: [usize; 3],
    /// Learnable parameters.
    pub params: usize,
    /// Multiply-accumulates per image, biases excluded.
    pub macs: u64,
    /// Every layer after `input`, in order.
    pub layers: &'static [LayerInfo],
    /// The network's structure: its layers in order, with its residual
    /// blocks.
    pub graph: &'static [Node],
    /// The shape table as plain text.
    pub summary: &'static str,
    /// The forward pass.
    pub plan: Plan,
    /// f32s of workspace one forward pass needs, [`Plan::workspace_len`].
    pub workspace: usize,
}

impl Model {
    /// The model of a network, its workspace worked out from its plan (in
    /// const context, where the expansion of `network!` calls this).
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        name: &'static str,
        input: [usize; 3],
        output: [usize; 3],
        params: usize,
        macs: u64,
        layers: &'static [LayerInfo],
        graph: &'static [Node],
        summary: &'static str,
        plan: Plan,
    ) -> Model {
        Model {
            name,
            input,
            output,
            params,
            macs,
            layers,
            graph,
            summary,
            workspace: plan.workspace_len(),
            plan,
        }
    }

    /// Values of one input image.
    pub const fn input_len(&self) -> usize {
        self.input[0] * self.input[1] * self.input[2]
    }

    /// Values of one output.
    pub const fn output_len(&self) -> usize {
        self.output[0] * self.output[1] * self.output[2]
    }
}
