@CAPACITY
Feature: Capacity and recovery, declared by the implementation
  How much load an implementation takes and how fast it recovers from a crash are requirements
  of their own, apart from correctness: the crash scenarios (`crash.feature`) judge that nothing
  is lost or doubled at the rate the implementation declares, within a generous bound, and a
  slow but correct implementation passes them. Here it is held to what it declares in
  `[capacity]` (docs/configuration.md): `load_rate` orders per second (25 by default) and a
  recovery budget, `recovery_seconds` (30 s by default). The report shows what was declared and
  the figures measured. Each measurement starts on an idle implementation: one still draining an
  earlier scenario's work by `settle_seconds` is not judged, with the lag seen.

  @CAPACITY-1 @serial @must
  Scenario: The implementation sustains its declared rate
    Given the implementation is idle: every consumer group of the saga has consumed its topics to their end
    And the catalogue has product "P1" priced 10.00 with 10000 in stock
    And orders flow at the declared rate for product "P1"
    When the load has run for 10 seconds
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load kept up with the declared rate: every order answered 201, settled at that rate, and what was left when it stopped settled within the saga budget

  # The backlog is what was open when the killed service was started again: the orders accepted
  # before, and those whose answer was lost in the crash. Intake counts as back at its first 201
  # to a request sent after the restart.
  @RECOVERY-1 @serial @must @needs-kill-product
  Scenario: After a crash under the declared load, the implementation recovers within its declared budget
    Given the implementation is idle: every consumer group of the saga has consumed its topics to their end
    And the catalogue has product "P1" priced 10.00 with 10000 in stock
    And orders flow at the declared rate for product "P1"
    When the load has placed 25 orders
    And the declared burst of orders arrives at once
    And the Product Service is killed
    And the fault is held until 20 orders are open
    And the Product Service is started again
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the implementation recovered within the declared recovery budget: intake answered 201 again and every order open at the restart settled
