"""The engine: programs (a model's stages plus its loss) and the executors that run them."""
