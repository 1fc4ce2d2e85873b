"""What ``bench.run_throughput``'s worker runs: a no-op catalog job, plain no-op Celery tasks,
and a completion counter every case pays the same for."""
