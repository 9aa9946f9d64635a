"""sleet's exceptions: one class per sleet::errc, all under sleet.Error."""

from . import _sleet


class Error(Exception):
    """A sleet error. ``code`` is the errc name (e.g. ``"not_found"``),
    ``value`` its number; the message names the object."""

    def __init__(self, message, value=0):
        super().__init__(message)
        self.value = value
        self.code = _NAMES.get(value, "unknown")


_NAMES = dict(_sleet.errc_names())

# errc name -> (class name, extra builtin base)
_CLASSES = {
    "invalid_name": ("InvalidName", ValueError),
    "invalid_argument": ("InvalidArgument", ValueError),
    "not_found": ("NotFound", FileNotFoundError),
    "already_exists": ("AlreadyExists", FileExistsError),
    "not_sleet": ("NotSleet", None),
    "version_mismatch": ("VersionMismatch", None),
    "kind_mismatch": ("KindMismatch", None),
    "type_mismatch": ("TypeMismatch", TypeError),
    "too_large": ("TooLarge", ValueError),
    "full": ("Full", None),
    "timeout": ("Timeout", TimeoutError),
    "closed": ("Closed", None),
    "wrong_mode": ("WrongMode", None),
    "busy": ("Busy", None),
    "peer_dead": ("PeerDead", None),
    "decode_failed": ("DecodeFailed", None),
    "owner_died": ("OwnerDied", None),
    "permission_denied": ("PermissionDenied", PermissionError),
    "system_error": ("SystemError", OSError),
    "not_owner": ("NotOwner", None),
    "not_managed": ("NotManaged", None),
    "child_failed": ("ChildFailed", None),
    "corrupted": ("Corrupted", None),
}

BY_VALUE = {}
BY_CODE = {}
for _value, _code in _NAMES.items():
    _name, _extra = _CLASSES.get(_code, ("".join(p.title() for p in _code.split("_")), None))
    _bases = (Error,) if _extra is None else (Error, _extra)
    _cls = type(_name, _bases, {"__doc__": "sleet errc::" + _code, "__module__": "sleet"})
    BY_VALUE[_value] = _cls
    BY_CODE[_code] = _cls
    globals()[_name] = _cls


def make(code, message):
    """A new exception of the class for errc ``code`` (its name)."""
    cls = BY_CODE[code]
    return cls(message, next(v for v, c in _NAMES.items() if c == code))


__all__ = ["Error"] + [n for n, _ in _CLASSES.values()]
