"""Decoding strategies as small pure functions over a `Stepper` ("logits for the next position").

They never know which model family they drive, so greedy, beam and sampling work the same for
decoders and encoder-decoders.
"""
