"""Chain packages: addresses, transaction parsing and assembly, pure and shared by node and gateway."""
