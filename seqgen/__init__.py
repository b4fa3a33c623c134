"""seqgen: classic recurrent sequence models (language models, translation, captioning)."""

__version__ = "0.1.0"
