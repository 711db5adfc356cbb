"""The contract and building models.

The protocol, the specifications, the registry of backends, the parameter layout and its
transfer.
"""
