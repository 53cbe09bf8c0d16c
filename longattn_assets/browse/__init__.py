"""A viewer over a category's windows in LDS order: `longattn browse`."""
