"""The QA core that training/ and export/ build on: examples and their readers, the one record parser, windows,
the span decoder, SQuAD metrics and the exported model folder's layout. Nothing here runs a model."""
