MSH|^~\&|ADT|HOSP|REG|HOSP|20250102030405+0100||ACK^A08^ACK|ACK1|P|2.4
MSA|AR|A08-7|segment 3 has id 'pv1': a segment id is three upper-case letters or digits followed by the field separator '\F\'
ERR|pv1^1^^100&segment 3 has id 'pv1': a segment id is three upper-case letters or digits followed by the field separator '\F\'&HL70357
