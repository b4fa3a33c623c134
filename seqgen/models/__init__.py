"""Model definitions: the recurrent building blocks and one module per task."""
