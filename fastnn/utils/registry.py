"""Name → class lookup for strings in the public API (``activation="relu"``, ``loss="mse"``)."""


def snake_case(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


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

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._entries
