"""What tests share: brokers, clusters, clients, waiting, and the suite-wide fixtures.

Tests import from here, never from another directory's conftest or test module; helpers only
one directory uses stay in that directory. The modules:

- :mod:`tests.support.fixtures`: the fixtures every test can ask for by name (registered for the
  whole suite by ``pytest_plugins`` in tests/conftest.py): ``broker`` (a ``headrace broker``
  subprocess shared by a module), ``fresh_broker`` (one of the test's own), ``start_broker``
  (a factory taking extra flags), ``etcd``, ``private_etcd``, ``keyspace``, ``make_store`` and
  ``cluster`` (etcd plus three brokers). A directory may override one, as tests/server gives
  ``broker`` an in-process broker.
- :mod:`tests.support.brokers`: :func:`~tests.support.brokers.in_process_broker`, the one place
  a test builds a broker in its own process (the Kafka side on an ephemeral port of 127.0.0.1,
  optionally its HTTP app and cluster membership); ``http_broker`` and ``RunningBroker`` for
  the HTTP API tests; :class:`~tests.support.brokers.BrokerProcess`, a broker subprocess::

      async with in_process_broker(tmp_path / "data", retention_check_seconds=0.05) as running:
          await asyncio.to_thread(produce, running.bootstrap)

- :mod:`tests.support.clusters`: a real etcd (``running_etcd``), metadata stores, and what the
  replication and fault tests read and drive (partition states, ``ProducerLoad``, loss checks).
- :mod:`tests.support.clients`: one factory per Kafka client library (confluent-kafka producer,
  consumer and admin; kafka-python; aiokafka) with short timeouts, ``create_topic`` and
  ``consume_all``.
- :mod:`tests.support.waiting`: ``eventually`` and ``eventually_async``, the one way a test waits
  for something another thread, task or process does (bounded, and its failure names what it
  waited for); never ``sleep`` as synchronisation::

      eventually(lambda: all_led(cluster.bootstrap, "orders", 3), timeout=20,
                 message="a leader for every partition", retry_on=(Exception,))
      await eventually_async(lambda: pid not in state.producers, timeout=30,
                             message="the producer state to expire")

- :mod:`tests.support.batches` and :mod:`tests.support.log_reads`: record batches encoded, and
  logs read back, independently of the broker's own record code.
"""
