"""The partitioning lab's data: a seeded dataset, its layouts, partitioners and engines.

- :mod:`~scalelab.data.generate`, :mod:`~scalelab.data.layout`: the ``orders``
  and ``customers`` tables, written as Parquet partitioned by hash, range or
  column (``scalelab data generate``);
- :mod:`~scalelab.data.partitioners`, :mod:`~scalelab.data.ring`: which
  partition holds a key (hash, range, a consistent-hash ring, or your own);
- :mod:`~scalelab.data.queries`, :mod:`~scalelab.data.sqlite_db`: the queries,
  answered from pandas partitions or from an SQLite database per partition;
- :mod:`~scalelab.data.partitions`: the partitions on the cluster, built and
  moved by the ``router`` layer (:mod:`scalelab.service.layers.router`).
"""
