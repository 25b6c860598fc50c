from aiokafka.producer import sender as aiokafka_sender

from streams.runtime.transaction import CONCURRENT_TRANSACTIONS_BACKOFF_S, Transaction


async def test_a_transaction_retries_concurrent_transactions_in_milliseconds() -> None:
    # aiokafka's own wait is 20 ms for each commit that follows another at once.
    aiokafka_sender.BACKOFF_OVERRIDE = 0.02
    transaction = Transaction(
        "localhost:1",
        group="g",
        transactional_id="g-w1",
        source_topic="raw",
        changelog_topic="g-changelog",
        derived_topic="derived",
        dead_letter_topic="dead",
    )
    assert aiokafka_sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_BACKOFF_S < 0.005
    await transaction.producer.stop()
