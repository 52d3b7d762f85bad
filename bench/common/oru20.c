/*
 * oru20: see oru20.h.
 */
#include "oru20.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const bench_obs bench_panel[BENCH_PANEL] = {
    {"2345-7", "Glucose", "112", "mg/dL", "70-99", "H"},
    {"3094-0", "Urea nitrogen", "14", "mg/dL", "7-20", "N"},
    {"2160-0", "Creatinine", "0.92", "mg/dL", "0.6-1.2", "N"},
    {"2951-2", "Sodium", "139", "mmol/L", "136-145", "N"},
    {"2823-3", "Potassium", "4.1", "mmol/L", "3.5-5.1", "N"},
    {"2075-0", "Chloride", "101", "mmol/L", "98-107", "N"},
    {"2028-9", "Carbon dioxide", "25", "mmol/L", "22-29", "N"},
    {"17861-6", "Calcium", "9.4", "mg/dL", "8.6-10.3", "N"},
    {"2885-2", "Protein", "7.1", "g/dL", "6.0-8.3", "N"},
    {"1751-7", "Albumin", "4.3", "g/dL", "3.5-5.2", "N"},
    {"1975-2", "Bilirubin.total", "0.7", "mg/dL", "0.1-1.2", "N"},
    {"6768-6", "Alkaline phosphatase", "88", "U/L", "44-147", "N"},
    {"1742-6", "Alanine aminotransferase", "52", "U/L", "7-56", "N"},
    {"1920-8", "Aspartate aminotransferase", "31", "U/L", "10-40", "N"},
    {"718-7", "Hemoglobin", "13.2", "g/dL", "12.0-15.5", "N"},
    {"4544-3", "Hematocrit", "39.8", "%", "35.5-44.9", "N"},
    {"6690-2", "Leukocytes", "6.4", "10*3/uL", "4.5-11.0", "N"},
    {"777-3", "Platelets", "251", "10*3/uL", "150-450", "N"},
    {"2093-3", "Cholesterol", "212", "mg/dL", "0-199", "H"},
    {"2571-8", "Triglyceride", "143", "mg/dL", "0-149", "N"},
};

void bench_oru20(tbuf *out)
{
    tbuf_puts(out, "MSH|^~\\&|LIS|CENTRAL LAB^2.16.840.1.113883.3.72.5.20^ISO|EHR|GENERAL "
                   "HOSPITAL|20240601121500-0500||ORU^R01^ORU_R01|LIS000184467|P|2.5.1|||AL|NE\r");
    tbuf_puts(out, "PID|1||1234566^^M10^HOSP&2.16.840.1.113883.3.72&ISO^MR~987654321^^^SSA^SS"
                   "||DOE^JANE^Q^^MS^^L~SMITH^JANE^^^^^M||19800115|F|||123 MAIN ST^APT "
                   "4B^SPRINGFIELD^IL^62701^USA^H||^PRN^PH^^1^217^5550123|||M||AC000918273\r");
    tbuf_puts(out, "PV1|1|O|CLIN^204^1^HOSP||||1234^JONES^ROBERT^A^^DR^MD|||MED||||1|||1234^"
                   "JONES^ROBERT^A^^DR^MD|OP|V000771234|||||||||||||||||||||||||"
                   "20240601073000\r");
    tbuf_puts(out, "ORC|RE|PL123456^EHR|FL987654^LIS||CM||||20240601073500|||1234^JONES^"
                   "ROBERT^A^^DR^MD\r");
    tbuf_puts(out, "OBR|1|PL123456^EHR|FL987654^LIS|24323-8^Comprehensive metabolic panel and "
                   "CBC^LN|||20240601080000|||||||20240601081500||1234^JONES^ROBERT^A^^DR^MD"
                   "||||||20240601120500|||F\r");
    tbuf_puts(out, "NTE|1|L|Specimen received at 08:15, slightly lipemic.\r");
    for (int i = 0; i < 20; i++) {
        const bench_obs *o = &bench_panel[i];
        tbuf_printf(out, "OBX|%d|NM|%s^%s^LN||%s|%s^%s^UCUM|%s|%s|||F|||20240601080000|LAB^"
                         "Central Lab^L\r",
                    i + 1, o->code, o->name, o->value, o->units, o->units, o->range, o->flag);
    }
}

/* --- variants ------------------------------------------------------------------------- */

/* A small deterministic generator (xorshift32), so variant k is the same
 * on every run and machine. */
static unsigned next_rand(unsigned *s)
{
    unsigned x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static unsigned pick(unsigned *s, unsigned n)
{
    return next_rand(s) % n;
}

/* The Luhn (M10) check digit of the digits s. */
static int luhn(const char *s)
{
    int sum = 0, dbl = 1;
    for (size_t i = strlen(s); i-- > 0; dbl = !dbl) {
        int d = s[i] - '0';
        if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    return (10 - sum % 10) % 10;
}

/* Decimal places of the text v ("0.92": 2). */
static int places(const char *v)
{
    const char *dot = strchr(v, '.');
    return dot ? (int)strlen(dot + 1) : 0;
}

/* A value of result o for this run: its bench value scaled by 0.88 to 1.12,
 * with as many decimals; its flag from the range "low-high". */
static void vary_value(const bench_obs *o, unsigned *s, char *val, size_t vsize, char *flag)
{
    double v = strtod(o->value, NULL) * (88 + pick(s, 25)) / 100.0;
    snprintf(val, vsize, "%.*f", places(o->value), v);
    double lo = strtod(o->range, NULL), hi = strtod(strchr(o->range, '-') + 1, NULL);
    double shown = strtod(val, NULL);
    *flag = shown < lo ? 'L' : shown > hi ? 'H' : 'N';
}

void bench_oru20_vary(tbuf *out, unsigned k)
{
    static const char *const family[] = {"DOE", "SMITH", "GARCIA", "NGUYEN", "MULLER", "OKAFOR",
                                         "JOHANSSON", "ROSSI"};
    static const char *const given[] = {"JANE", "JOHN", "MARIA", "WEI", "ANNA", "CHIDI", "LARS",
                                        "GIULIA"};
    unsigned s = 2463534242u ^ (k * 2654435761u);
    if (!s) s = 1;
    char id[16];
    snprintf(id, sizeof id, "%07u", 1000000 + pick(&s, 8999999));
    unsigned day = 1 + pick(&s, 28);
    unsigned hour = 6 + pick(&s, 12);
    unsigned min = pick(&s, 60);
    char when[16]; /* the run's day and time, in May 2024 */
    snprintf(when, sizeof when, "202405%02u%02u%02u", day, hour, min);
    tbuf_printf(out,
                "MSH|^~\\&|LIS|CENTRAL LAB^2.16.840.1.113883.3.72.5.20^ISO|EHR|GENERAL "
                "HOSPITAL|%s00-0500||ORU^R01^ORU_R01|LIS%09u|P|2.5.1|||AL|NE\r",
                when, 184467 + k);
    /* one draw per statement: the order of arguments' evaluation is unspecified */
    unsigned ssn = 100000000 + pick(&s, 899999999);
    const char *fam = family[pick(&s, 8)];
    const char *giv = given[pick(&s, 8)];
    unsigned by = 1930 + pick(&s, 85);
    unsigned bm = 1 + pick(&s, 12);
    unsigned bd = 1 + pick(&s, 28);
    unsigned account = pick(&s, 999999999);
    unsigned visit = pick(&s, 999999999);
    tbuf_printf(out,
                "PID|1||%s%d^^M10^HOSP&2.16.840.1.113883.3.72&ISO^MR~%09u^^^SSA^SS||%s^%s^Q^^"
                "MS^^L||%04u%02u%02u|%c|||123 MAIN ST^APT 4B^SPRINGFIELD^IL^62701^USA^H||^PRN^"
                "PH^^1^217^5550123|||M||AC%09u\r",
                id, luhn(id), ssn, fam, giv, by, bm, bd, "FM"[k & 1], account);
    tbuf_printf(out,
                "PV1|1|O|CLIN^204^1^HOSP||||1234^JONES^ROBERT^A^^DR^MD|||MED||||1|||1234^JONES^"
                "ROBERT^A^^DR^MD|OP|V%09u|||||||||||||||||||||||||%s00\r",
                visit, when);
    unsigned order = 100000 + pick(&s, 899999);
    tbuf_printf(out,
                "ORC|RE|PL%u^EHR|FL%u^LIS||CM||||%s00|||1234^JONES^ROBERT^A^^DR^MD\r", order,
                order + 7, when);
    tbuf_printf(out,
                "OBR|1|PL%u^EHR|FL%u^LIS|24323-8^Comprehensive metabolic panel and CBC^LN|||"
                "%s00|||||||%s00||1234^JONES^ROBERT^A^^DR^MD||||||%s00|||F\r",
                order, order + 7, when, when, when);
    tbuf_puts(out, "NTE|1|L|Specimen received at 08:15, slightly lipemic.\r");
    for (int i = 0; i < BENCH_PANEL; i++) {
        const bench_obs *o = &bench_panel[i];
        char val[32], flag;
        vary_value(o, &s, val, sizeof val, &flag);
        tbuf_printf(out,
                    "OBX|%d|NM|%s^%s^LN||%s|%s^%s^UCUM|%s|%c|||F|||%s00|LAB^Central Lab^L\r",
                    i + 1, o->code, o->name, val, o->units, o->units, o->range, flag, when);
    }
}
