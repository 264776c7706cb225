"""Figures per experiment: ``ntkexp.plots.<experiment>.plot(frame, out_dir)``.

``ntkexp plot TABLE`` imports the module named after each experiment found in
the table and calls its ``plot`` with that experiment's rows; each writes PNG
and PDF files into ``out_dir`` and returns their paths.
"""
