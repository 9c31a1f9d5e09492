
    
    



select watermark_seq
from "ecom_batchdev"."marts"."batch_watermark"
where watermark_seq is null


