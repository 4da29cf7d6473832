#!/usr/bin/env bash
# The Kafka command-line tools of saga-kafka: /opt/kafka/bin/kafka-*.sh, as the official
# distribution and image ship them, from the jars in /opt/kafka/libs (kafka-tools and kafka_2.13
# from Maven Central, see docker/kafka/pom.xml). One script, installed once and linked under each
# tool's name; the name it is called by picks the main class (busybox style):
#
#   docker exec <kafka> /opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 --list
#
# Same knobs as the distribution's kafka-run-class.sh: KAFKA_HEAP_OPTS (default -Xmx256M here),
# KAFKA_OPTS. The tools log warnings and errors to stderr (/etc/kafka/docker/tools-log4j2.yaml).
set -euo pipefail

KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"

case "$(basename "$0")" in
  kafka-topics.sh)               main=org.apache.kafka.tools.TopicCommand ;;
  kafka-consumer-groups.sh)      main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  kafka-console-consumer.sh)     main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  kafka-console-producer.sh)     main=org.apache.kafka.tools.ConsoleProducer ;;
  kafka-get-offsets.sh)          main=org.apache.kafka.tools.GetOffsetShell ;;
  kafka-configs.sh)              main=kafka.admin.ConfigCommand ;;
  kafka-broker-api-versions.sh)  main=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
  kafka-metadata-quorum.sh)      main=org.apache.kafka.tools.MetadataQuorumCommand ;;
  kafka-log-dirs.sh)             main=org.apache.kafka.tools.LogDirsCommand ;;
  kafka-delete-records.sh)       main=org.apache.kafka.tools.DeleteRecordsCommand ;;
  kafka-reassign-partitions.sh)  main=org.apache.kafka.tools.reassign.ReassignPartitionsCommand ;;
  kafka-leader-election.sh)      main=org.apache.kafka.tools.LeaderElectionCommand ;;
  kafka-transactions.sh)         main=org.apache.kafka.tools.TransactionsCommand ;;
  kafka-acls.sh)                 main=org.apache.kafka.tools.AclCommand ;;
  kafka-cluster.sh)              main=org.apache.kafka.tools.ClusterTool ;;
  kafka-features.sh)             main=org.apache.kafka.tools.FeatureCommand ;;
  kafka-storage.sh)              main=kafka.tools.StorageTool ;;
  kafka-run-class.sh)            main="${1:?usage: kafka-run-class.sh MAIN_CLASS [ARGS...]}"; shift ;;
  *) echo "tools.sh: called as '$(basename "$0")', which is no tool of this image; see ls $KAFKA_HOME/bin" >&2; exit 2 ;;
esac

# shellcheck disable=SC2086  # KAFKA_HEAP_OPTS / KAFKA_OPTS are word lists by convention
exec java ${KAFKA_HEAP_OPTS:--Xmx256M} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/etc/kafka/docker/tools-log4j2.yaml \
  -cp "$KAFKA_HOME/libs/*" "$main" "$@"
