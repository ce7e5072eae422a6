"""Name → class lookup for strings in the public API (``activation="relu"``, ``loss="mse"``)."""
import re


def snake_case(name):
    """Keras' rule: ``"BatchNormalization"`` -> ``"batch_normalization"``, ``"PReLU"`` ->
    ``"p_re_lu"``, ``"F1Score"`` -> ``"f1_score"``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def serialize(obj):
    """``{"class_name", "config"}``: plain data that the registry's ``resolve`` turns back."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


class Registry:
    """Maps names (and aliases) to factories; unknown names list the known ones."""

    def __init__(self, kind, plural=None):
        self.kind = kind
        self.plural = plural or kind + "s"
        self._entries = {}

    def register(self, *names):
        def decorate(obj):
            for name in names or (obj.__name__,):
                self._entries[name.lower()] = obj
            return obj
        return decorate

    def get(self, name):
        key = name.lower() if isinstance(name, str) else name
        if key not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise ValueError(f"Unknown {self.kind} {name!r}. Known {self.plural}: {known}")
        return self._entries[key]

    def names(self):
        return sorted(self._entries)

    def resolve(self, identifier, base, from_name=True):
        """An instance of ``base`` from itself, a registered name (constructed with
        defaults; only when ``from_name``) or a ``{"class_name", "config"}`` dict."""
        if isinstance(identifier, base):
            return identifier
        if from_name and isinstance(identifier, str):
            return self.get(identifier)()
        if isinstance(identifier, dict) and "class_name" in identifier:
            return self.get(identifier["class_name"]).from_config(identifier.get("config", {}))
        article = "an" if self.kind[0] in "aeiou" else "a"
        raise ValueError(f"Cannot use {identifier!r} as {article} {self.kind}; known "
                         f"{self.plural}: {', '.join(self.names())}")

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._entries
