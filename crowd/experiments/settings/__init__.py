"""Named experiment settings (presets) of the papers, one module per paper."""
