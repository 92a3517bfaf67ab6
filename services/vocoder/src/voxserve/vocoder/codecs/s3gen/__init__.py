"""S3Gen: speech tokens -> mel (conformer encoder + conditional flow matching) -> 24 kHz (HiFT)."""
