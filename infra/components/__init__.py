"""One Pulumi ComponentResource per subsystem of the stack."""
