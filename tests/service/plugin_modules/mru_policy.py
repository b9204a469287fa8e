"""An eviction policy for the service tests, plugged in by import path: most recently used."""

from scalelab.service.cache_policies import EvictionPolicy


class MRU(EvictionPolicy):
    """Evicts the key used last: under a cyclic scan the rest of the cache stays useful."""

    def __init__(self, maxsize):
        super().__init__(maxsize)
        self.order = {}  # least recently used first

    def on_insert(self, key):
        self.order[key] = None

    def on_access(self, key):
        self.order.pop(key, None)
        self.order[key] = None

    def on_remove(self, key):
        self.order.pop(key, None)

    def victim(self):
        return next(reversed(self.order))
