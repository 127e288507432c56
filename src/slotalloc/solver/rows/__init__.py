"""One module per FORMAT rule, stating it as constraint rows over the compiled arrays."""
