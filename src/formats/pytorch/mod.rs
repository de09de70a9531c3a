//! Torch zip checkpoints read through a restricted unpickler (never executes code).
