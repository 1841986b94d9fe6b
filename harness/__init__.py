"""clone3-fuzz: checks the running kernel's clone3() against its extensible-struct contract."""
