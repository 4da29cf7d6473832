@TIME
Feature: Processing time
  The seed's table — intake ~100 ms, reservation 1–2 s, confirmation 0.5–1 s, payment
  0.5–1 s, whole saga 2–5 s — as budgets on a percentile over many orders after a warm-up
  (budgets, percentile, sample count and a scale factor for slow machines: conformance.toml).

  @TIME-1 @serial @must
  Scenario: Stage latencies are within the seed's budgets
    Given the catalogue has product "P1" priced 100.00 with 100000 in stock
    When orders for 1 of "P1" are placed one after another and timed
    Then every stage's latency percentile is within its budget
