use cnn::network;

network! {
    /// A network with a mistake: only the mistake is reported, not every use.
    pub struct Net { input(3, 32, 32) conv(10, 5, s = 2) relu fc(10) }
}

fn main() {
    let net = Net::init(0);
    let x = ndarray::Array3::<f32>::zeros((3, 32, 32));
    let _ = net.forward(x.view());
    let _ = Net::PARAMS + Net::LAYERS.len();
}
