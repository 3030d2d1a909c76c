//! Arbitrary bytes as a safetensors weights file: loading must return a
//! network or an error, never panic, and a loaded network must run, on one
//! image and on a batch.

#![no_main]

use libfuzzer_sys::fuzz_target;

cnn::network! {
    /// Small, with every kind of tensor and dotted names: conv with and
    /// without bias, batch norm (F32 weights and running statistics, an I64
    /// `num_batches_tracked` of shape []) and fc, through a named residual
    /// block. Its tensors are listed in `make_safetensors_seeds.py`.
    struct Target {
        input(2, 5, 5)
        conv(3, 3, p = 1) bn relu
        block: residual(relu) { conv(3, 3, p = 1, bias = false) norm: bn }
        pool(2, 1)
        fc(4) softmax
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(net) = Target::from_safetensors_bytes(data) {
        let [c, h, w] = Target::INPUT;
        let x = ndarray::Array3::from_elem((c, h, w), 0.5f32);
        let y = net.forward(x.view()).expect("the input has the network's shape");
        assert_eq!(y.shape(), Target::OUTPUT);
        let batch = ndarray::Array4::from_elem((2, c, h, w), -0.25f32);
        let y = net
            .forward_batch(batch.view())
            .expect("the batch has the network's shape");
        assert_eq!(y.shape()[1..], Target::OUTPUT);
    }
});
