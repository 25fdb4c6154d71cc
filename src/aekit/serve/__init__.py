"""``aekit serve``: the trained runs in a browser page and behind an HTTP API (``pip install aekit[serve]``).

- :mod:`aekit.serve.runs`: the runs the server may open, named by id, opened once and cached;
- :mod:`aekit.serve.inputs`: request images and arrays checked and decoded, before any large allocation;
- :mod:`aekit.serve.app`: the FastAPI app (``create_app``), thin handlers over :mod:`aekit.tasks`.
"""
