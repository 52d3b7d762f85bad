/*
 * dround: a double rounded to a number of significant decimal digits,
 * exactly as glibc's printf rounds ("%.*e", "%.*g"): correctly, ties to
 * even on the exact binary value, whatever the magnitude (subnormals
 * included). Used where printf would cost most of the time (the FHIR JSON
 * writer's reals, UCUM conversion results), with output identical to it.
 *
 * Common values (within about 10^-16..10^(prec-1) of 1) take one 128-bit
 * multiplication; the others are done in bignums of 32-bit limbs.
 */
#ifndef TERN_BASE_DROUND_H
#define TERN_BASE_DROUND_H

/* Scratch size of dround's digit buffer: the decimal digits of the largest
 * exact expansion (m * 5^1074), rounded up to whole chunks of 9. */
#define DROUND_MAX 800

/* |v| (finite, not zero) rounded to prec (1..17) significant digits: the
 * digits go to d[0..prec) (trailing zeros included; d is scratch of
 * DROUND_MAX bytes) and the return value is the decimal exponent of d[0]. */
int dround(double v, int prec, char d[DROUND_MAX]);

#endif
