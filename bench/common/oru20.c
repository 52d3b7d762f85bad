/*
 * oru20: see oru20.h.
 */
#include "oru20.h"

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
