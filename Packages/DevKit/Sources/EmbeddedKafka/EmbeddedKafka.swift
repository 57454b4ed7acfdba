// EmbeddedKafka
