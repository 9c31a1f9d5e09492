"""The edge of the platform: the event contract, the shop simulator (the one generator behind every
synthetic dataset), the Kafka producer and the replay of real transaction files."""
