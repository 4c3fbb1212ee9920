"""The load tool that installs with the client (its ``load`` extra brings HdrHistogram).

What enters: a running ObservationService's address and a rate. What leaves: latency
percentiles timed from each call's scheduled send, the achieved rate and the errors by status
(``command``), built on the open-loop scheduler (``scheduler``) and HdrHistogram helpers
(``histograms``) the benchmark harness uses too.

``pip install 'usdcop-observation-client[load]'`` then ``usdcop-observation-load --target
HOST:PORT --rate 500 --duration 30``. Importing ``client`` never imports this package.
"""
