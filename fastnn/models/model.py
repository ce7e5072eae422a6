"""``Model``: the base class of fastnn's models, so ``isinstance(model, keras.Model)``
holds for a Sequential as in Keras."""


class Model:
    """Base class of fastnn models. fastnn builds ``Sequential`` models only.

    ``Model(inputs, outputs)`` (Keras' functional API) is not available here: it
    raises ``NotImplementedError`` naming the alternative.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            raise NotImplementedError(
                "fastnn builds Sequential models only: keras.Model(inputs, outputs) (the "
                "functional API) is not supported; use fastnn.Sequential([...]) instead")
        return super().__new__(cls)
