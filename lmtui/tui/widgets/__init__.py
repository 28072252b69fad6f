"""The app's panels: the model bar, the prompt editors, the decoding form and the open-model dialog."""
