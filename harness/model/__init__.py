"""The contract and building models: the protocol, the specifications, the registry of backends, the parameter layout and its transfer."""
