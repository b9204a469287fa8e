"""The system under test: an HTTP task service whose work runs on a Dask cluster.

``scalelab serve`` runs it (:mod:`.server`); :func:`scalelab.service.process.start_service`
starts it as a child process. The request path is admission and faults
(:mod:`.ingress`), then an executor (:mod:`.executors`) running a workload
(:mod:`.workloads`) on Dask. Nothing is imported here, so that starting a
service from an orchestrator pulls in neither Dask nor the app.
"""
