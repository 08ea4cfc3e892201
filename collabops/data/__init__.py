"""The data stage: the contract and its column rules, reading files, the example data, the time split, profiles."""
