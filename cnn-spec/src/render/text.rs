use crate::model::Network;

/// The shape table as plain text for a terminal, like torchinfo's summary.
pub fn summary(network: &Network) -> String {
    super::markdown(network)
}
