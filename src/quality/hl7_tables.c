/*
 * hl7_tables: built-in HL7 tables and user CSV tables; see hl7_tables.h.
 *
 * The built-in data below is written from the HL7 v2.5.1 definitions (with
 * the later additions noted in docs/validation.md), sorted by code so that
 * lookups can bisect; tests/unit/test_validate.c checks the order. A user
 * table keeps all its strings in one buffer it owns; entries point into it.
 */
#include "quality/hl7_tables.h"

#include "base/bytes.h"
#include "base/mem.h"
#include "base/tbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const hl7_table_entry t0001[] = {
    {"A", "Ambiguous"},
    {"F", "Female"},
    {"M", "Male"},
    {"N", "Not applicable"},
    {"O", "Other"},
    {"U", "Unknown"},
};

static const hl7_table_entry t0002[] = {
    {"A", "Separated"},
    {"B", "Unmarried"},
    {"C", "Common law"},
    {"D", "Divorced"},
    {"E", "Legally separated"},
    {"G", "Living together"},
    {"I", "Interlocutory"},
    {"M", "Married"},
    {"N", "Annulled"},
    {"O", "Other"},
    {"P", "Domestic partner"},
    {"R", "Registered domestic partner"},
    {"S", "Single"},
    {"T", "Unreported"},
    {"U", "Unknown"},
    {"W", "Widowed"},
};

static const hl7_table_entry t0003[] = {
    {"A01", "Admit/visit notification"},
    {"A02", "Transfer a patient"},
    {"A03", "Discharge/end visit"},
    {"A04", "Register a patient"},
    {"A05", "Pre-admit a patient"},
    {"A06", "Change an outpatient to an inpatient"},
    {"A07", "Change an inpatient to an outpatient"},
    {"A08", "Update patient information"},
    {"A09", "Patient departing - tracking"},
    {"A10", "Patient arriving - tracking"},
    {"A11", "Cancel admit/visit notification"},
    {"A12", "Cancel transfer"},
    {"A13", "Cancel discharge/end visit"},
    {"A14", "Pending admit"},
    {"A15", "Pending transfer"},
    {"A16", "Pending discharge"},
    {"A17", "Swap patients"},
    {"A18", "Merge patient information"},
    {"A19", "Patient query"},
    {"A20", "Bed status update"},
    {"A21", "Patient goes on a leave of absence"},
    {"A22", "Patient returns from a leave of absence"},
    {"A23", "Delete a patient record"},
    {"A24", "Link patient information"},
    {"A25", "Cancel pending discharge"},
    {"A26", "Cancel pending transfer"},
    {"A27", "Cancel pending admit"},
    {"A28", "Add person information"},
    {"A29", "Delete person information"},
    {"A30", "Merge person information"},
    {"A31", "Update person information"},
    {"A32", "Cancel patient arriving - tracking"},
    {"A33", "Cancel patient departing - tracking"},
    {"A34", "Merge patient information - patient ID only"},
    {"A35", "Merge patient information - account number only"},
    {"A36", "Merge patient information - patient ID and account number"},
    {"A37", "Unlink patient information"},
    {"A38", "Cancel pre-admit"},
    {"A39", "Merge person - patient ID"},
    {"A40", "Merge patient - patient identifier list"},
    {"A41", "Merge account - patient account number"},
    {"A42", "Merge visit - visit number"},
    {"A43", "Move patient information - patient identifier list"},
    {"A44", "Move account information - patient account number"},
    {"A45", "Move visit information - visit number"},
    {"A46", "Change patient ID"},
    {"A47", "Change patient identifier list"},
    {"A48", "Change alternate patient ID"},
    {"A49", "Change patient account number"},
    {"A50", "Change visit number"},
    {"A51", "Change alternate visit ID"},
    {"A52", "Cancel leave of absence for a patient"},
    {"A53", "Cancel patient returns from a leave of absence"},
    {"A54", "Change attending doctor"},
    {"A55", "Cancel change attending doctor"},
    {"A60", "Update allergy information"},
    {"A61", "Change consulting doctor"},
    {"A62", "Cancel change consulting doctor"},
    {"B01", "Personnel management event"},
    {"B02", "Personnel management event"},
    {"B03", "Personnel management event"},
    {"B04", "Personnel management event"},
    {"B05", "Personnel management event"},
    {"B06", "Personnel management event"},
    {"B07", "Personnel management event"},
    {"B08", "Personnel management event"},
    {"C01", "Clinical trials event"},
    {"C02", "Clinical trials event"},
    {"C03", "Clinical trials event"},
    {"C04", "Clinical trials event"},
    {"C05", "Clinical trials event"},
    {"C06", "Clinical trials event"},
    {"C07", "Clinical trials event"},
    {"C08", "Clinical trials event"},
    {"C09", "Clinical trials event"},
    {"C10", "Clinical trials event"},
    {"C11", "Clinical trials event"},
    {"C12", "Clinical trials event"},
    {"CNQ", "Cancel query"},
    {"I01", "Patient referral/authorization event"},
    {"I02", "Patient referral/authorization event"},
    {"I03", "Patient referral/authorization event"},
    {"I04", "Patient referral/authorization event"},
    {"I05", "Patient referral/authorization event"},
    {"I06", "Patient referral/authorization event"},
    {"I07", "Patient referral/authorization event"},
    {"I08", "Patient referral/authorization event"},
    {"I09", "Patient referral/authorization event"},
    {"I10", "Patient referral/authorization event"},
    {"I11", "Patient referral/authorization event"},
    {"I12", "Patient referral/authorization event"},
    {"I13", "Patient referral/authorization event"},
    {"I14", "Patient referral/authorization event"},
    {"I15", "Patient referral/authorization event"},
    {"I19", "Patient referral/authorization event"},
    {"I20", "Patient referral/authorization event"},
    {"I21", "Patient referral/authorization event"},
    {"I22", "Patient referral/authorization event"},
    {"J01", "Cancel query/acknowledge message"},
    {"J02", "Cancel subscription/acknowledge message"},
    {"K11", "Segment pattern response to QBP^Q11"},
    {"K13", "Tabular response"},
    {"K15", "Display response"},
    {"K21", "Get person demographics response"},
    {"K22", "Find candidates response"},
    {"K23", "Get corresponding identifiers response"},
    {"K24", "Allocate identifiers response"},
    {"K25", "Personnel information by segment response"},
    {"K31", "Dispense history response"},
    {"K32", "Find candidates including visit information response"},
    {"M01", "Master file event"},
    {"M02", "Master file event"},
    {"M03", "Master file event"},
    {"M04", "Master file event"},
    {"M05", "Master file event"},
    {"M06", "Master file event"},
    {"M07", "Master file event"},
    {"M08", "Master file event"},
    {"M09", "Master file event"},
    {"M10", "Master file event"},
    {"M11", "Master file event"},
    {"M12", "Master file event"},
    {"M13", "Master file event"},
    {"M14", "Master file event"},
    {"M15", "Master file event"},
    {"M16", "Master file event"},
    {"M17", "Master file event"},
    {"N01", "Application management query"},
    {"N02", "Application management data"},
    {"O01", "Order message"},
    {"O02", "Order response"},
    {"O03", "Order event"},
    {"O04", "Order event"},
    {"O05", "Order event"},
    {"O06", "Order event"},
    {"O07", "Order event"},
    {"O08", "Order event"},
    {"O09", "Order event"},
    {"O10", "Order event"},
    {"O11", "Order event"},
    {"O12", "Order event"},
    {"O13", "Order event"},
    {"O14", "Order event"},
    {"O15", "Order event"},
    {"O16", "Order event"},
    {"O17", "Order event"},
    {"O18", "Order event"},
    {"O19", "Order event"},
    {"O20", "Order event"},
    {"O21", "Laboratory order"},
    {"O22", "Laboratory order response"},
    {"O23", "Order event"},
    {"O24", "Order event"},
    {"O25", "Order event"},
    {"O26", "Order event"},
    {"O27", "Order event"},
    {"O28", "Order event"},
    {"O29", "Order event"},
    {"O30", "Order event"},
    {"O31", "Order event"},
    {"O32", "Order event"},
    {"O33", "Laboratory order for multiple orders related to a single specimen"},
    {"O34", "Order event"},
    {"O35", "Laboratory order for multiple orders related to a single container of a specimen"},
    {"O36", "Order event"},
    {"O37", "Order event"},
    {"O38", "Order event"},
    {"O39", "Order event"},
    {"O40", "Order event"},
    {"O41", "Order event"},
    {"O42", "Order event"},
    {"O43", "Order event"},
    {"O44", "Order event"},
    {"P01", "Patient accounting event"},
    {"P02", "Patient accounting event"},
    {"P03", "Patient accounting event"},
    {"P04", "Patient accounting event"},
    {"P05", "Patient accounting event"},
    {"P06", "Patient accounting event"},
    {"P07", "Patient accounting event"},
    {"P08", "Patient accounting event"},
    {"P09", "Patient accounting event"},
    {"P10", "Patient accounting event"},
    {"P11", "Patient accounting event"},
    {"P12", "Patient accounting event"},
    {"PC1", "Patient care event"},
    {"PC2", "Patient care event"},
    {"PC3", "Patient care event"},
    {"PC4", "Patient care event"},
    {"PC5", "Patient care event"},
    {"PC6", "Patient care event"},
    {"PC7", "Patient care event"},
    {"PC8", "Patient care event"},
    {"PC9", "Patient care event"},
    {"PCA", "Patient care event"},
    {"PCB", "Patient care event"},
    {"PCC", "Patient care event"},
    {"PCD", "Patient care event"},
    {"PCE", "Patient care event"},
    {"PCF", "Patient care event"},
    {"PCG", "Patient care event"},
    {"PCH", "Patient care event"},
    {"PCJ", "Patient care event"},
    {"PCK", "Patient care event"},
    {"PCL", "Patient care event"},
    {"Q01", "Query event"},
    {"Q02", "Query event"},
    {"Q03", "Query event"},
    {"Q05", "Query event"},
    {"Q06", "Query event"},
    {"Q11", "Query event"},
    {"Q13", "Query event"},
    {"Q15", "Query event"},
    {"Q16", "Query event"},
    {"Q17", "Query event"},
    {"Q21", "Query event"},
    {"Q22", "Query event"},
    {"Q23", "Query event"},
    {"Q24", "Query event"},
    {"Q25", "Query event"},
    {"Q26", "Query event"},
    {"Q27", "Query event"},
    {"Q28", "Query event"},
    {"Q29", "Query event"},
    {"Q30", "Query event"},
    {"Q31", "Query event"},
    {"R01", "Unsolicited transmission of an observation message"},
    {"R02", "Query for results of observation"},
    {"R04", "Response to query; transmission of requested observation"},
    {"R21", "Unsolicited laboratory observation"},
    {"R22", "Unsolicited specimen oriented observation message"},
    {"R23", "Unsolicited specimen container oriented observation message"},
    {"R24", "Unsolicited order oriented observation message"},
    {"R25", "Unsolicited transmission of an observation message (automated)"},
    {"R26", "Unsolicited specimen shipment manifest"},
    {"R30", "Unsolicited point-of-care observation message without existing order"},
    {"R31", "Unsolicited new point-of-care observation message - search for an order"},
    {"R32", "Unsolicited pre-ordered point-of-care observation"},
    {"R33", "Unsolicited point-of-care observation message without existing order (no response)"},
    {"R40", "Report alarm"},
    {"R41", "Report alarm acknowledgement"},
    {"RAR", "Pharmacy query response (original mode)"},
    {"RDR", "Pharmacy query response (original mode)"},
    {"RER", "Pharmacy query response (original mode)"},
    {"RGR", "Pharmacy query response (original mode)"},
    {"ROR", "Pharmacy query response (original mode)"},
    {"S01", "Scheduling event"},
    {"S02", "Scheduling event"},
    {"S03", "Scheduling event"},
    {"S04", "Scheduling event"},
    {"S05", "Scheduling event"},
    {"S06", "Scheduling event"},
    {"S07", "Scheduling event"},
    {"S08", "Scheduling event"},
    {"S09", "Scheduling event"},
    {"S10", "Scheduling event"},
    {"S11", "Scheduling event"},
    {"S12", "Scheduling event"},
    {"S13", "Scheduling event"},
    {"S14", "Scheduling event"},
    {"S15", "Scheduling event"},
    {"S16", "Scheduling event"},
    {"S17", "Scheduling event"},
    {"S18", "Scheduling event"},
    {"S19", "Scheduling event"},
    {"S20", "Scheduling event"},
    {"S21", "Scheduling event"},
    {"S22", "Scheduling event"},
    {"S23", "Scheduling event"},
    {"S24", "Scheduling event"},
    {"S25", "Scheduling event"},
    {"S26", "Scheduling event"},
    {"T01", "Medical document event"},
    {"T02", "Medical document event"},
    {"T03", "Medical document event"},
    {"T04", "Medical document event"},
    {"T05", "Medical document event"},
    {"T06", "Medical document event"},
    {"T07", "Medical document event"},
    {"T08", "Medical document event"},
    {"T09", "Medical document event"},
    {"T10", "Medical document event"},
    {"T11", "Medical document event"},
    {"T12", "Medical document event"},
    {"U01", "Laboratory automation event"},
    {"U02", "Laboratory automation event"},
    {"U03", "Laboratory automation event"},
    {"U04", "Laboratory automation event"},
    {"U05", "Laboratory automation event"},
    {"U06", "Laboratory automation event"},
    {"U07", "Laboratory automation event"},
    {"U08", "Laboratory automation event"},
    {"U09", "Laboratory automation event"},
    {"U10", "Laboratory automation event"},
    {"U11", "Laboratory automation event"},
    {"U12", "Laboratory automation event"},
    {"U13", "Laboratory automation event"},
    {"V01", "Query for vaccination record"},
    {"V02", "Response to vaccination query returning multiple PID matches"},
    {"V03", "Vaccination record response"},
    {"V04", "Unsolicited vaccination record update"},
    {"W01", "Waveform result, unsolicited transmission of requested information"},
    {"W02", "Waveform result, response to query"},
};

static const hl7_table_entry t0004[] = {
    {"B", "Obstetrics"},
    {"C", "Commercial account"},
    {"E", "Emergency"},
    {"I", "Inpatient"},
    {"N", "Not applicable"},
    {"O", "Outpatient"},
    {"P", "Preadmit"},
    {"R", "Recurring patient"},
    {"U", "Unknown"},
};

static const hl7_table_entry t0076[] = {
    {"ACK", "General acknowledgment"},
    {"ADR", "ADT response"},
    {"ADT", "ADT message"},
    {"BAR", "Add/change billing account"},
    {"BPS", "Blood product dispense status"},
    {"BRP", "Blood product dispense status acknowledgement"},
    {"BRT", "Blood product transfusion/disposition acknowledgement"},
    {"BTS", "Blood product transfusion/disposition"},
    {"CRM", "Clinical study registration"},
    {"CSU", "Unsolicited study data"},
    {"DFT", "Detail financial transactions"},
    {"DOC", "Document response"},
    {"DSR", "Display response"},
    {"EAC", "Automated equipment command"},
    {"EAN", "Automated equipment notification"},
    {"EAR", "Automated equipment response"},
    {"EHC", "Health care invoice"},
    {"ESR", "Automated equipment status update acknowledgment"},
    {"ESU", "Automated equipment status update"},
    {"INR", "Automated equipment inventory request"},
    {"INU", "Automated equipment inventory update"},
    {"LSR", "Automated equipment log/service request"},
    {"LSU", "Automated equipment log/service update"},
    {"MDM", "Medical document management"},
    {"MFD", "Master files delayed application acknowledgment"},
    {"MFK", "Master files application acknowledgment"},
    {"MFN", "Master files notification"},
    {"MFQ", "Master files query"},
    {"MFR", "Master files response"},
    {"NMD", "Application management data message"},
    {"NMQ", "Application management query message"},
    {"NMR", "Application management response message"},
    {"OMB", "Blood product order"},
    {"OMD", "Dietary order"},
    {"OMG", "General clinical order"},
    {"OMI", "Imaging order"},
    {"OML", "Laboratory order"},
    {"OMN", "Non-stock requisition order"},
    {"OMP", "Pharmacy/treatment order"},
    {"OMS", "Stock requisition order"},
    {"OPL", "Population/location-based laboratory order"},
    {"OPR", "Population/location-based laboratory order acknowledgment"},
    {"OPU", "Unsolicited population/location-based laboratory observation"},
    {"ORB", "Blood product order acknowledgement"},
    {"ORD", "Dietary order acknowledgment"},
    {"ORF", "Query for results of observation"},
    {"ORG", "General clinical order acknowledgement"},
    {"ORI", "Imaging order acknowledgement"},
    {"ORL", "General laboratory order response"},
    {"ORM", "Pharmacy/treatment order"},
    {"ORN", "Non-stock requisition acknowledgment"},
    {"ORP", "Pharmacy/treatment order acknowledgment"},
    {"ORR", "General order response"},
    {"ORS", "Stock requisition acknowledgment"},
    {"ORU", "Unsolicited transmission of an observation"},
    {"OSQ", "Query response for order status"},
    {"OSR", "Query response for order status"},
    {"OUL", "Unsolicited laboratory observation"},
    {"PEX", "Product experience"},
    {"PGL", "Patient goal"},
    {"PIN", "Patient insurance information"},
    {"PMU", "Add personnel record"},
    {"PPG", "Patient pathway (goal-oriented)"},
    {"PPP", "Patient pathway (problem-oriented)"},
    {"PPR", "Patient problem"},
    {"PPT", "Patient pathway (goal oriented) response"},
    {"PPV", "Patient goal response"},
    {"PRR", "Patient problem response"},
    {"PTR", "Patient pathway (problem-oriented) response"},
    {"QBP", "Query by parameter"},
    {"QCK", "Deferred query"},
    {"QCN", "Cancel query"},
    {"QRY", "Query, original mode"},
    {"QSB", "Create subscription"},
    {"QSX", "Cancel subscription/acknowledge"},
    {"QVR", "Query for previous events"},
    {"RAR", "Pharmacy/treatment administration information"},
    {"RAS", "Pharmacy/treatment administration"},
    {"RCI", "Return clinical information"},
    {"RCL", "Return clinical list"},
    {"RDE", "Pharmacy/treatment encoded order"},
    {"RDR", "Pharmacy/treatment dispense information"},
    {"RDS", "Pharmacy/treatment dispense"},
    {"RDY", "Display based response"},
    {"REF", "Patient referral"},
    {"RER", "Pharmacy/treatment encoded order information"},
    {"RGR", "Pharmacy/treatment dose information"},
    {"RGV", "Pharmacy/treatment give"},
    {"ROR", "Pharmacy/treatment order response"},
    {"RPA", "Return patient authorization"},
    {"RPI", "Return patient information"},
    {"RPL", "Return patient display list"},
    {"RPR", "Return patient list"},
    {"RQA", "Request patient authorization"},
    {"RQC", "Request clinical information"},
    {"RQI", "Request patient information"},
    {"RQP", "Request patient demographics"},
    {"RRA", "Pharmacy/treatment administration acknowledgment"},
    {"RRD", "Pharmacy/treatment dispense acknowledgment"},
    {"RRE", "Pharmacy/treatment encoded order acknowledgment"},
    {"RRG", "Pharmacy/treatment give acknowledgment"},
    {"RRI", "Return referral information"},
    {"RSP", "Segment pattern response"},
    {"RTB", "Tabular response"},
    {"SIU", "Schedule information unsolicited"},
    {"SPQ", "Stored procedure request"},
    {"SQM", "Schedule query"},
    {"SQR", "Schedule query response"},
    {"SRM", "Schedule request"},
    {"SRR", "Scheduled request response"},
    {"SSR", "Specimen status request"},
    {"SSU", "Specimen status update"},
    {"STC", "Stop code"},
    {"SUR", "Summary product experience report"},
    {"TCR", "Automated equipment test code settings request"},
    {"TCU", "Automated equipment test code settings update"},
    {"UDM", "Unsolicited display update"},
    {"VXQ", "Query for vaccination record"},
    {"VXR", "Vaccination record response"},
    {"VXU", "Unsolicited vaccination record update"},
    {"VXX", "Response for vaccination query with multiple PID matches"},
};

static const hl7_table_entry t0078[] = {
    {"<", "Below absolute low-off instrument scale"},
    {">", "Above absolute high-off instrument scale"},
    {"A", "Abnormal"},
    {"AA", "Very abnormal"},
    {"AC", "Anti-complementary substances present"},
    {"B", "Better"},
    {"CAR", "Carrier"},
    {"D", "Significant change down"},
    {"DET", "Detected"},
    {"EX", "Outside threshold"},
    {"H", "Above high normal"},
    {"HH", "Above upper panic limits"},
    {"HU", "Significantly high"},
    {"HX", "Above high threshold"},
    {"I", "Intermediate"},
    {"IE", "Insufficient evidence"},
    {"IND", "Indeterminate"},
    {"L", "Below low normal"},
    {"LL", "Below lower panic limits"},
    {"LU", "Significantly low"},
    {"LX", "Below low threshold"},
    {"MS", "Moderately susceptible"},
    {"N", "Normal"},
    {"NCL", "No CLSI defined breakpoint"},
    {"ND", "Not detected"},
    {"NEG", "Negative"},
    {"NR", "Non-reactive"},
    {"NS", "Non-susceptible"},
    {"POS", "Positive"},
    {"QCF", "Quality control failure"},
    {"R", "Resistant"},
    {"RR", "Reactive"},
    {"S", "Susceptible"},
    {"SDD", "Susceptible-dose dependent"},
    {"SYN-R", "Synergy - resistant"},
    {"SYN-S", "Synergy - susceptible"},
    {"TOX", "Toxic"},
    {"U", "Significant change up"},
    {"VS", "Very susceptible"},
    {"W", "Worse"},
    {"WR", "Weakly reactive"},
};

static const hl7_table_entry t0085[] = {
    {"A", "Amended based on adjustments provided by the placer"},
    {"C", "Record coming over is a correction and thus replaces a final result"},
    {"D", "Deletes the OBX record"},
    {"F", "Final results"},
    {"I", "Specimen in lab; results pending"},
    {"N", "Not asked"},
    {"O", "Order detail description only"},
    {"P", "Preliminary results"},
    {"R", "Results entered - not verified"},
    {"S", "Partial results"},
    {"U", "Results status change to final without retransmitting results already sent as preliminary"},
    {"W", "Post original as wrong"},
    {"X", "Results cannot be obtained for this observation"},
};

static const hl7_table_entry t0103[] = {
    {"D", "Debugging"},
    {"P", "Production"},
    {"T", "Training"},
};

static const hl7_table_entry t0104[] = {
    {"2.0", "Release 2.0"},
    {"2.0D", "Release 2.0D"},
    {"2.1", "Release 2.1"},
    {"2.2", "Release 2.2"},
    {"2.3", "Release 2.3"},
    {"2.3.1", "Release 2.3.1"},
    {"2.4", "Release 2.4"},
    {"2.5", "Release 2.5"},
    {"2.5.1", "Release 2.5.1"},
    {"2.6", "Release 2.6"},
    {"2.7", "Release 2.7"},
    {"2.7.1", "Release 2.7.1"},
    {"2.8", "Release 2.8"},
    {"2.8.1", "Release 2.8.1"},
    {"2.8.2", "Release 2.8.2"},
    {"2.9", "Release 2.9"},
};

static const hl7_table_entry t0123[] = {
    {"A", "Some, but not all, results available"},
    {"C", "Correction to results"},
    {"F", "Final results; results stored and verified"},
    {"I", "No results available; specimen received, procedure incomplete"},
    {"O", "Order received; specimen not yet received"},
    {"P", "Preliminary: a verified early result is available, final results not yet obtained"},
    {"R", "Results stored; not yet verified"},
    {"S", "No results available; procedure scheduled, but not done"},
    {"X", "No results available; order canceled"},
    {"Y", "No order on record for this test"},
    {"Z", "No record of this patient"},
};

static const hl7_table_entry t0125[] = {
    {"AD", "Address"},
    {"CE", "Coded entry"},
    {"CF", "Coded element with formatted values"},
    {"CK", "Composite ID with check digit"},
    {"CN", "Composite ID and name"},
    {"CNE", "Coded with no exceptions"},
    {"CP", "Composite price"},
    {"CWE", "Coded with exceptions"},
    {"CX", "Extended composite ID with check digit"},
    {"DR", "Date/time range"},
    {"DT", "Date"},
    {"DTM", "Date/time"},
    {"ED", "Encapsulated data"},
    {"FT", "Formatted text"},
    {"ID", "Coded value for HL7 defined tables"},
    {"IS", "Coded value for user-defined tables"},
    {"MO", "Money"},
    {"NM", "Numeric"},
    {"PN", "Person name"},
    {"RP", "Reference pointer"},
    {"SN", "Structured numeric"},
    {"ST", "String data"},
    {"TM", "Time"},
    {"TN", "Telephone number"},
    {"TS", "Time stamp"},
    {"TX", "Text data"},
    {"XAD", "Extended address"},
    {"XCN", "Extended composite name and number for persons"},
    {"XON", "Extended composite name and number for organizations"},
    {"XPN", "Extended person name"},
    {"XTN", "Extended telecommunications number"},
};

static const hl7_table_entry t0203[] = {
    {"AM", "American Express"},
    {"AN", "Account number"},
    {"ANON", "Anonymous identifier"},
    {"BA", "Bank account number"},
    {"BR", "Birth registry number"},
    {"BRN", "Breed registry number"},
    {"DI", "Diagnostic imaging identifier"},
    {"DL", "Driver's license number"},
    {"DN", "Doctor number"},
    {"DR", "Donor registration number"},
    {"DS", "Discover card"},
    {"EI", "Employee number"},
    {"EN", "Employer number"},
    {"FI", "Facility identifier"},
    {"GI", "Guarantor internal identifier"},
    {"GL", "General ledger number"},
    {"GN", "Guarantor external identifier"},
    {"HC", "Health card number"},
    {"JHN", "Jurisdictional health number"},
    {"LI", "Labor and industries number"},
    {"LN", "License number"},
    {"LR", "Local registry ID"},
    {"MA", "Patient Medicaid number"},
    {"MB", "Member number"},
    {"MC", "Patient's Medicare number"},
    {"MCD", "Practitioner Medicaid number"},
    {"MCN", "Microchip number"},
    {"MCR", "Practitioner Medicare number"},
    {"MD", "Medical license number"},
    {"MI", "Military ID number"},
    {"MR", "Medical record number"},
    {"MRT", "Temporary medical record number"},
    {"MS", "MasterCard"},
    {"NE", "National employer identifier"},
    {"NH", "National health plan identifier"},
    {"NI", "National unique individual identifier"},
    {"NII", "National insurance organization identifier"},
    {"NIIP", "National insurance payor identifier"},
    {"NP", "Nurse practitioner number"},
    {"NPI", "National provider identifier"},
    {"OD", "Optometrist license number"},
    {"PE", "Living subject enterprise number"},
    {"PEN", "Pension number"},
    {"PI", "Patient internal identifier"},
    {"PN", "Person number"},
    {"PNT", "Temporary living subject number"},
    {"PPN", "Passport number"},
    {"PRC", "Permanent resident card number"},
    {"PRN", "Provider number"},
    {"PT", "Patient external identifier"},
    {"QA", "QA number"},
    {"RI", "Resource identifier"},
    {"RN", "Registered nurse number"},
    {"RPH", "Pharmacist license number"},
    {"RR", "Railroad retirement number"},
    {"RRI", "Regional registry ID"},
    {"SL", "State license"},
    {"SN", "Subscriber number"},
    {"SR", "State registry ID"},
    {"SS", "Social Security number"},
    {"TAX", "Tax ID number"},
    {"U", "Unspecified identifier"},
    {"UPIN", "Medicare/CMS universal physician identification number"},
    {"VN", "Visit number"},
    {"VS", "VISA"},
    {"WC", "WIC identifier"},
    {"WCN", "Workers' comp number"},
    {"XX", "Organization identifier"},
};

static const hl7_table_entry t0061[] = {
    {"BCV", "Bank card validation number"},
    {"ISO", "ISO 7064: 1983"},
    {"M10", "Mod 10 algorithm"},
    {"M11", "Mod 11 algorithm"},
    {"NPI", "Check digit algorithm in the US National Provider Identifier"},
};

static const hl7_table_entry t0301[] = {
    {"CLIA", "Clinical Laboratory Improvement Amendments"},
    {"CLIP", "Clinical laboratory improvement program"},
    {"DNS", "An Internet dotted name"},
    {"EUI64", "IEEE 64-bit extended unique identifier"},
    {"GUID", "Same as UUID"},
    {"HCD", "The CEN healthcare coding identifier"},
    {"HL7", "Reserved for future HL7 registration schemes"},
    {"ISO", "An International Standards Organization object identifier (OID)"},
    {"L", "Local"},
    {"M", "Local"},
    {"N", "Local"},
    {"Random", "Usually a base64 encoded string of random bits"},
    {"URI", "Uniform resource identifier"},
    {"UUID", "The DCE universal unique identifier"},
    {"x400", "An X.400 MHS identifier"},
    {"x500", "An X.500 directory name"},
};

/* A built-in table (without a hash index: the registry adds one). */
#define TABLE(name, title, entries) \
    {(name), (title), (entries), sizeof(entries) / sizeof((entries)[0]), NULL, 0}

static const hl7_table builtin[] = {
    TABLE("0001", "Administrative Sex", t0001),
    TABLE("0002", "Marital Status", t0002),
    TABLE("0003", "Event Type", t0003),
    TABLE("0004", "Patient Class", t0004),
    TABLE("0076", "Message Type", t0076),
    TABLE("0078", "Abnormal Flags", t0078),
    TABLE("0085", "Observation Result Status", t0085),
    TABLE("0103", "Processing ID", t0103),
    TABLE("0104", "Version ID", t0104),
    TABLE("0123", "Result Status", t0123),
    TABLE("0125", "Value Type", t0125),
    TABLE("0203", "Identifier Type", t0203),
    TABLE("0061", "Check Digit Scheme", t0061),
    TABLE("0301", "Universal ID Type", t0301),
};

#define NBUILTIN (sizeof(builtin) / sizeof(builtin[0]))

const char *hl7_table_strerror(hl7_table_status s)
{
    switch (s) {
    case HL7_TABLE_OK: return "ok";
    case HL7_TABLE_ERR_IO: return "cannot read table file";
    case HL7_TABLE_ERR_CSV: return "malformed table CSV";
    case HL7_TABLE_ERR_NAME: return "bad table name";
    }
    return "unknown table error";
}

/* memcmp order over the shorter length, then the shorter first; one pass
 * without strlen (codes are a few bytes). */
static int cmp_code(const char *a, size_t alen, const char *b)
{
    for (size_t i = 0; i < alen; i++) {
        unsigned char ca = (unsigned char)a[i], cb = (unsigned char)b[i];
        if (cb == '\0') return 1; /* b is a proper prefix of a */
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    return b[alen] ? -1 : 0;
}

/* The entry code equals code[0..len). */
static bool code_is(const char *entry, const char *code, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (entry[i] != code[i] || !entry[i]) return false;
    return entry[len] == '\0';
}

const hl7_table_entry *hl7_table_lookup(const hl7_table *t, const char *code, size_t len)
{
    if (t->slots) {
        for (size_t i = (size_t)bytes_hash(code, len) & t->mask;; i = (i + 1) & t->mask) {
            uint32_t s = t->slots[i];
            if (!s) return NULL;
            if (code_is(t->entries[s - 1].code, code, len)) return &t->entries[s - 1];
        }
    }
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_code(code, len, t->entries[mid].code);
        if (c == 0) return &t->entries[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The hash index of t (see hl7_table), allocated; sets t->slots and mask. */
static uint32_t *index_table(hl7_table *t)
{
    size_t size = 8;
    while (size < 2 * t->n) size *= 2;
    uint32_t *slots = xcalloc(size, sizeof(*slots));
    for (size_t k = 0; k < t->n; k++) {
        const char *c = t->entries[k].code;
        size_t i = (size_t)bytes_hash(c, strlen(c)) & (size - 1);
        while (slots[i]) i = (i + 1) & (size - 1);
        slots[i] = (uint32_t)k + 1;
    }
    t->slots = slots;
    t->mask = size - 1;
    return slots;
}

const hl7_table *hl7_table_builtin(const char *name)
{
    for (size_t i = 0; i < NBUILTIN; i++)
        if (!strcmp(builtin[i].name, name)) return &builtin[i];
    return NULL;
}

size_t hl7_table_builtin_count(void)
{
    return NBUILTIN;
}

const hl7_table *hl7_table_builtin_at(size_t i)
{
    return i < NBUILTIN ? &builtin[i] : NULL;
}

/* --- registry ------------------------------------------------------------ */

typedef struct user_table {
    hl7_table t;
    char *name;
    hl7_table_entry *entries;
    char *strings;  /* all codes and displays, NUL-separated */
    uint32_t *slots; /* t's hash index */
} user_table;

struct hl7_tables {
    user_table *user;
    size_t nuser, cap;
    hl7_table builtin[NBUILTIN]; /* the built-in tables, each with a hash index */
};

hl7_tables *hl7_tables_new(void)
{
    hl7_tables *r = xcalloc(1, sizeof(hl7_tables));
    for (size_t i = 0; i < NBUILTIN; i++) {
        r->builtin[i] = builtin[i];
        index_table(&r->builtin[i]);
    }
    return r;
}

static void user_table_free(user_table *u)
{
    free(u->name);
    free(u->entries);
    free(u->strings);
    free(u->slots);
}

void hl7_tables_free(hl7_tables *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nuser; i++) user_table_free(&r->user[i]);
    free(r->user);
    for (size_t i = 0; i < NBUILTIN; i++) free((uint32_t *)r->builtin[i].slots);
    free(r);
}

const hl7_table *hl7_tables_find(const hl7_tables *r, const char *name)
{
    for (size_t i = 0; i < r->nuser; i++)
        if (!strcmp(r->user[i].name, name)) return &r->user[i].t;
    for (size_t i = 0; i < NBUILTIN; i++)
        if (!strcmp(r->builtin[i].name, name)) return &r->builtin[i];
    return NULL;
}

static hl7_table_status fail(hl7_table_error *err, hl7_table_status code, size_t line,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static hl7_table_status fail(hl7_table_error *err, hl7_table_status code, size_t line,
                             const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->line = line;
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
    }
    return code;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 32) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Length of the valid UTF-8 prefix of p[0..len). */
static size_t utf8_valid_prefix(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                             : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || i + n > len) return i;
        if (n == 2 && c < 0xC2) return i;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80) return i;
        if (n == 3 && ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] >= 0xA0)))
            return i;
        if (n == 4 && ((c == 0xF0 && p[i + 1] < 0x90) || c > 0xF4 || (c == 0xF4 && p[i + 1] >= 0x90)))
            return i;
        i += n;
    }
    return i;
}

/* One row being read: fields appended to `strings`, their offsets kept. */
typedef struct row_entry {
    size_t code, display; /* offsets into strings */
    size_t line;
} row_entry;

typedef struct csv_reader {
    const char *s;
    size_t len, pos, line;
    const char *origin;
} csv_reader;

/* Reads one field at rd->pos into strings (NUL-terminated); *end says
 * whether the line ended after it. */
static hl7_table_status read_field(csv_reader *rd, tbuf *strings, bool *end, hl7_table_error *err)
{
    const char *s = rd->s;
    size_t i = rd->pos;
    if (i < rd->len && s[i] == '"') {
        i++;
        for (;;) {
            if (i >= rd->len || s[i] == '\n' || s[i] == '\r')
                return fail(err, HL7_TABLE_ERR_CSV, rd->line,
                            "%s:%zu: unterminated quoted field (close it with '\"'; write a "
                            "quote inside quotes as \"\")",
                            rd->origin, rd->line);
            if (s[i] == '"') {
                if (i + 1 < rd->len && s[i + 1] == '"') {
                    tbuf_putc(strings, '"');
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            tbuf_putc(strings, s[i++]);
        }
        if (i < rd->len && s[i] != ',' && s[i] != '\n' && s[i] != '\r')
            return fail(err, HL7_TABLE_ERR_CSV, rd->line,
                        "%s:%zu: unexpected text after a closing quote", rd->origin, rd->line);
    } else {
        size_t start = i;
        while (i < rd->len && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
            if (s[i] == '"')
                return fail(err, HL7_TABLE_ERR_CSV, rd->line,
                            "%s:%zu: a quote inside an unquoted field (quote the whole field)",
                            rd->origin, rd->line);
            i++;
        }
        tbuf_put(strings, s + start, i - start);
    }
    tbuf_putc(strings, '\0');
    *end = i >= rd->len || s[i] != ',';
    if (!*end) i++;
    rd->pos = i;
    return HL7_TABLE_OK;
}

static void skip_eol(csv_reader *rd)
{
    if (rd->pos < rd->len && rd->s[rd->pos] == '\r') rd->pos++;
    if (rd->pos < rd->len && rd->s[rd->pos] == '\n') rd->pos++;
    rd->line++;
}

static bool blank_line(const csv_reader *rd)
{
    size_t i = rd->pos;
    while (i < rd->len && (rd->s[i] == ' ' || rd->s[i] == '\t')) i++;
    return i >= rd->len || rd->s[i] == '\n' || rd->s[i] == '\r';
}

typedef struct sort_row {
    const char *code, *display;
    size_t line;
} sort_row;

static int cmp_rows(const void *a, const void *b)
{
    const sort_row *x = a, *y = b;
    int c = strcmp(x->code, y->code);
    if (c) return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Reads the data rows after the header into rows/strings. */
static hl7_table_status read_rows(csv_reader *rd, tbuf *strings, row_entry **rows, size_t *nrows,
                                  hl7_table_error *err)
{
    size_t cap = 0;
    while (rd->pos < rd->len) {
        if (blank_line(rd)) {
            while (rd->pos < rd->len && rd->s[rd->pos] != '\n' && rd->s[rd->pos] != '\r') rd->pos++;
            skip_eol(rd);
            continue;
        }
        row_entry e = {strings->len, 0, rd->line};
        size_t nfields = 0;
        bool end = false;
        while (!end) {
            size_t at = strings->len;
            hl7_table_status st = read_field(rd, strings, &end, err);
            if (st != HL7_TABLE_OK) return st;
            if (nfields == 1) e.display = at;
            nfields++;
        }
        if (nfields != 2)
            return fail(err, HL7_TABLE_ERR_CSV, rd->line,
                        "%s:%zu: expected 2 columns (code,display), found %zu", rd->origin,
                        rd->line, nfields);
        if (strings->p[e.code] == '\0')
            return fail(err, HL7_TABLE_ERR_CSV, rd->line, "%s:%zu: empty code", rd->origin,
                        rd->line);
        *rows = xgrow(*rows, &cap, *nrows + 1, sizeof(**rows));
        (*rows)[(*nrows)++] = e;
        skip_eol(rd);
    }
    return HL7_TABLE_OK;
}

/* Builds the user table from parsed rows: sorts, refuses duplicates. */
static hl7_table_status build_table(user_table *u, const row_entry *rows, size_t n,
                                    const char *origin, hl7_table_error *err)
{
    sort_row *sr = xcalloc(n ? n : 1, sizeof(*sr));
    for (size_t i = 0; i < n; i++)
        sr[i] = (sort_row){u->strings + rows[i].code, u->strings + rows[i].display, rows[i].line};
    qsort(sr, n, sizeof(*sr), cmp_rows);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(sr[i].code, sr[i - 1].code)) {
            hl7_table_status st =
                fail(err, HL7_TABLE_ERR_CSV, sr[i].line,
                     "%s:%zu: code '%s' already defined on line %zu", origin, sr[i].line,
                     sr[i].code, sr[i - 1].line);
            free(sr);
            return st;
        }
    u->entries = xcalloc(n ? n : 1, sizeof(*u->entries));
    for (size_t i = 0; i < n; i++) u->entries[i] = (hl7_table_entry){sr[i].code, sr[i].display};
    free(sr);
    u->t = (hl7_table){u->name, u->name, u->entries, n, NULL, 0};
    u->slots = index_table(&u->t);
    return HL7_TABLE_OK;
}

static void put_table(hl7_tables *r, user_table *u)
{
    for (size_t i = 0; i < r->nuser; i++)
        if (!strcmp(r->user[i].name, u->name)) {
            user_table_free(&r->user[i]);
            r->user[i] = *u;
            r->user[i].t.name = r->user[i].t.title = r->user[i].name;
            return;
        }
    r->user = xgrow(r->user, &r->cap, r->nuser + 1, sizeof(*r->user));
    r->user[r->nuser++] = *u;
}

hl7_table_status hl7_tables_add_csv(hl7_tables *r, const char *name, const char *text, size_t len,
                                    const char *origin, hl7_table_error *err)
{
    if (!origin) origin = "<text>";
    if (!valid_name(name))
        return fail(err, HL7_TABLE_ERR_NAME, 0,
                    "table name '%s': use 1 to 32 letters, digits, '_', '-' or '.'", name);
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) {
        text += 3;
        len -= 3;
    }
    size_t ok = utf8_valid_prefix((const unsigned char *)text, len);
    if (ok < len) {
        size_t line = 1;
        for (size_t i = 0; i < ok; i++) line += text[i] == '\n';
        return fail(err, HL7_TABLE_ERR_CSV, line, "%s:%zu: not valid UTF-8 (save the file as UTF-8)",
                    origin, line);
    }
    if (memchr(text, '\0', len))
        return fail(err, HL7_TABLE_ERR_CSV, 0, "%s: contains a NUL byte", origin);
    csv_reader rd = {text, len, 0, 1, origin};
    while (rd.pos < rd.len && blank_line(&rd)) {
        while (rd.pos < rd.len && text[rd.pos] != '\n' && text[rd.pos] != '\r') rd.pos++;
        skip_eol(&rd);
    }
    if (rd.pos >= rd.len)
        return fail(err, HL7_TABLE_ERR_CSV, 0,
                    "%s: empty: expected a header line \"code,display\" and rows", origin);
    while (rd.pos < rd.len && text[rd.pos] != '\n' && text[rd.pos] != '\r') rd.pos++;
    skip_eol(&rd);

    tbuf strings = TBUF_INIT;
    row_entry *rows = NULL;
    size_t nrows = 0;
    user_table u = {0};
    hl7_table_status st = read_rows(&rd, &strings, &rows, &nrows, err);
    if (st != HL7_TABLE_OK) goto done;
    u.name = xstrdup(name);
    u.strings = tbuf_detach(&strings, NULL);
    st = build_table(&u, rows, nrows, origin, err);
    if (st != HL7_TABLE_OK) goto done;
    put_table(r, &u);
    memset(&u, 0, sizeof(u));
done:
    user_table_free(&u);
    tbuf_free(&strings);
    free(rows);
    return st;
}

hl7_table_status hl7_tables_load_csv(hl7_tables *r, const char *name, const char *path,
                                     hl7_table_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, HL7_TABLE_ERR_IO, 0, "%s: %s (check the path in 'tables:')", path,
                    strerror(errno));
    tbuf b = TBUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) tbuf_put(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    hl7_table_status st;
    if (bad)
        st = fail(err, HL7_TABLE_ERR_IO, 0, "%s: read error", path);
    else
        st = hl7_tables_add_csv(r, name, b.p ? b.p : "", b.len, path, err);
    tbuf_free(&b);
    return st;
}
