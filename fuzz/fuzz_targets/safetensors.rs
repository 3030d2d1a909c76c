//! Arbitrary bytes as a safetensors weights file: loading must return a
//! network or an error, never panic, and a loaded network must run.

#![no_main]

use libfuzzer_sys::fuzz_target;

cnn::network! {
    /// Small, with both kinds of parameter tensor (conv and fc).
    struct Target {
        input(2, 5, 5)
        conv(3, 3, p = 1) relu pool(2, 1)
        fc(4) softmax
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(net) = Target::from_safetensors_bytes(data) {
        let [c, h, w] = Target::INPUT;
        let x = ndarray::Array3::from_elem((c, h, w), 0.5f32);
        let y = net.forward(x.view()).expect("the input has the network's shape");
        assert_eq!(y.shape(), Target::OUTPUT);
    }
});
