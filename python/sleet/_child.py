"""The start of a ProcessManager's Python child: import the target and run it."""

import importlib
import importlib.util
import sys


def main(args):
    how, where, qualname = args
    if how == "file":
        # The parent's __main__ under another name, so its
        # `if __name__ == "__main__":` block does not run again.
        spec = importlib.util.spec_from_file_location("__sleet_main__", where)
        module = importlib.util.module_from_spec(spec)
        sys.modules["__sleet_main__"] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    fn = module
    for part in qualname.split("."):
        fn = getattr(fn, part)
    code = fn()
    sys.exit(0 if code is None else int(code))
