@SCALE
Feature: Scaling out: several instances of each service on a three-node Kafka cluster
  Teams run the saga as several instances of each service in one consumer group, on a
  replicated Kafka. That is where orders get lost or applied twice: a rebalance hands a
  partition to another instance while the first is still working on it, a hung instance wakes up
  after its partitions were given away (a zombie), the leader of a partition dies between the
  write and the acknowledgement. Orders flow at the declared rate (`[capacity]`, plus a burst
  just before the fault) while each of these happens; then every order that was accepted ends exactly once —
  confirmed with one payment, or cancelled — with one push of each kind it is due, no second or
  conflicting effect on Kafka, and the stock down by exactly the units confirmed. The load, the
  faults and the checks are those of the crash scenarios (`crash.feature`).

  These scenarios need a scaled-out stack — `instances = 2` (or more) and `kafka_brokers = 3` on
  the processes or containers backend, or declared with the commands of an external one — and
  are skipped, with that reason, on a smaller one: scaling out is a deployment an
  implementation may offer (`@should`), and when it runs it must hold. The suite's
  HTTP requests go to instance 1 of each service; a fault on "an instance" hits another one.
  A fault counts as absorbed (intake must answer normally again) once the group has spread the
  partitions over the live instances, or the cluster has elected leaders on the running nodes.
  An instance fault waits first until every instance owns partitions, so the one it hits has work.

  @SCALE-1 @serial @should @needs-kill-instance-product
  Scenario: One of two Product Service instances is killed; the survivor takes its partitions over
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And orders flow at the declared rate for product "P1"
    When the Product Service's partitions are spread over its live instances
    And the load has placed 25 orders
    And the declared burst of orders arrives at once
    And a Product Service instance is killed
    And the fault is held until 20 orders are open
    And the Product Service's partitions are spread over its live instances
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed

  # The burst comes right after the new instance answers /health, while its consumer joins: the
  # other members learn of the rebalance on their next heartbeat, and the cooperative protocol
  # moves partitions in two rounds.
  @SCALE-2 @serial @should @needs-add-instance-product
  Scenario: A Product Service instance is added under load; the group rebalances without loss or duplicates
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And orders flow at the declared rate for product "P1"
    When the Product Service's partitions are spread over its live instances
    And the load has placed 25 orders
    And a Product Service instance is added
    And the declared burst of orders arrives at once
    And the fault is held until 20 orders are open
    And the Product Service's partitions are spread over its live instances
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed

  @SCALE-3 @serial @should @needs-broker-cluster
  Scenario: The Kafka node leading the saga partitions is killed; the others take over and the saga completes
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And orders flow at the declared rate for product "P1"
    When the load has placed 25 orders
    And the declared burst of orders arrives at once
    And the Kafka broker leading the saga topics' partitions is killed
    And the fault is held until 20 orders are open
    And the saga topics' partitions have leaders on the running brokers
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed

  # A zombie among several: the hung instance's partitions go to the other instance while it
  # still holds records it fetched; when it wakes, it finishes them — the other instance has
  # handled them too by then.
  @SCALE-4 @serial @should @needs-pause-instance-product
  Scenario: A Product Service instance paused past its session timeout makes no second effect once it resumes
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And orders flow at the declared rate for product "P1"
    When the Product Service's partitions are spread over its live instances
    And the load has placed 25 orders
    And the declared burst of orders arrives at once
    And a Product Service instance is paused
    And the fault is held until 20 orders are open
    And the Product Service's partitions are spread over its live instances
    And the load has placed 25 more orders
    And the paused Product Service instance is resumed
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed
