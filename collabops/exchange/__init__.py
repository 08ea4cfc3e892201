"""The exchange stage: partner keys, signed bundles, what data and model bundles hold, pseudonymisation."""
