# Makes `docpipe` importable for `pytest` run from this folder or from the repository root (pytest puts
# the folder of a rootdir conftest.py on sys.path).
