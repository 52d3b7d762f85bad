MSH|^~\&|||||20250102030405+0100||ACK|ACK1|P|2.5.1
MSA|AR||the input is empty: no HL7 message found
ERR|||100^Segment sequence error^HL70357|E||||the input is empty: no HL7 message found
